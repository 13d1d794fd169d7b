//! `spk repo ls --repo R [PKG[/VERSION]] [--no-index] [--format text|json]`
//!
//! From the index when there is one (a configured repository only with
//! `use_index = true`, SPK's rule; a path not in the config whenever its
//! index exists), else from the repository. Both give the same answer.

use anyhow::anyhow;
use spk_messaging_core::PkgIdent;
use spk_repo::listing::{list_index, list_repository, ListError, Listing};
use spk_repo::{Index, Repository};

use crate::exit::CmdResult;
use crate::output::{print_json, Format};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Repository: a configured name, a path or a file: URL.
    #[arg(long, short = 'r', value_name = "REPO")]
    repo: String,
    /// A package, or a package version; nothing lists every package.
    #[arg(value_name = "PKG[/VERSION]")]
    what: Option<PkgIdent>,
    /// Read the repository itself, not its index.
    #[arg(long)]
    no_index: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub fn run(ctx: &super::Context, args: Args) -> CmdResult {
    if let Some(id) = &args.what {
        if id.build.is_some() {
            return Err(
                anyhow!("{id}: `spk repo ls` takes PKG or PKG/VERSION, not a build").into(),
            );
        }
    }
    let (_cfg, resolved) = ctx.repo(&args.repo)?;
    let repo = Repository::open(&resolved.address).map_err(anyhow::Error::from)?;
    let index_path = repo.index_path();
    let wanted = !args.no_index && (!resolved.configured || resolved.config.use_index);
    let listing: Listing = if wanted && index_path.exists() {
        tracing::info!("listing from the index {}", index_path.display());
        let index = Index::open(&index_path)
            .map_err(|e| anyhow!("{e}; `--no-index` reads the repository instead"))?;
        list_index(&index, args.what.as_ref(), &resolved.address.to_url()).map_err(|e| match e {
            ListError::Index(e) => anyhow!("{e}; `--no-index` reads the repository instead"),
            other => other.into(),
        })?
    } else {
        tracing::info!("listing from the repository {}", resolved.address);
        let (l, problems) =
            list_repository(&repo, args.what.as_ref()).map_err(anyhow::Error::from)?;
        for p in problems {
            tracing::warn!("skipped {p}");
        }
        l
    };
    match args.format {
        Format::Json => print_json(&serde_json::to_value(&listing).unwrap_or_default()),
        Format::Text => {
            for p in &listing.packages {
                match &p.versions {
                    None => println!("{}", p.name),
                    Some(vs) => {
                        for v in vs {
                            match &v.builds {
                                None => println!("{}/{}", p.name, v.version),
                                Some(bs) => {
                                    for b in bs {
                                        let dep = if b.deprecated { "  (deprecated)" } else { "" };
                                        println!("{}/{}/{}{dep}", p.name, v.version, b.build);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(())
}
