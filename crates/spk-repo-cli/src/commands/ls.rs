//! `spk repo ls --repo R [PKG[/VERSION]] [--no-index] [--format text|json]`
//!
//! From the index `index/spk/index_v1.fb` when the repository uses one
//! (SPK's rule: `use_index = true`, or a repository SPK's config does not
//! mention) and it exists, else from the spfs repository itself. Both give
//! the same answer; `--format json` adds each build's published components.

use anyhow::anyhow;
use spk_messaging_core::PkgIdent;
use spk_repo::listing::{self, From, Listing, Query};
use spk_repo::spfs::SpfsRepo;

use crate::exit::CmdResult;
use crate::output::{print_json, Format};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Repository: a name (spfs's config or the SPK config), a path or a file: URL.
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

/// The query from `PKG[/VERSION]`.
pub fn query(what: Option<&PkgIdent>) -> anyhow::Result<Query> {
    let version = match what.and_then(|w| w.version.as_ref()) {
        Some(v) => Some(
            spk_repo::v0::parse_version(v.as_str())
                .map_err(|e| anyhow!("{v}: not a version: {e}"))?,
        ),
        None => None,
    };
    Ok(Query {
        name: what.map(|w| w.name.to_string()),
        version,
    })
}

pub fn run(ctx: &super::Context, args: Args) -> CmdResult {
    if let Some(id) = &args.what {
        if id.build.is_some() {
            return Err(anyhow!(
                "{id}: `spk repo ls` takes PKG or PKG/VERSION, not a build (`spk repo show` shows one build)"
            )
            .into());
        }
    }
    let (_cfg, resolved) = ctx.repo(&args.repo)?;
    let q = query(args.what.as_ref())?;
    let url = resolved.address.to_url();
    let index_path = spk_repo::index_path(resolved.address.path());
    let use_index = !args.no_index && resolved.config.use_index;
    let (listing, problems): (Listing, _) = if use_index && index_path.exists() {
        tracing::info!("listing from the index {}", index_path.display());
        let index = spk_repo::fb::IndexFile::open(&index_path)
            .map_err(|e| anyhow!("{e}; `--no-index` reads the repository instead"))?;
        listing::list(&From::Index(&index), &q, &url).map_err(anyhow::Error::from)?
    } else {
        tracing::info!("listing from the repository {}", resolved.address);
        let repo = SpfsRepo::open(resolved.address.path()).map_err(anyhow::Error::from)?;
        listing::list(&From::Repository(&repo), &q, &url).map_err(anyhow::Error::from)?
    };
    for p in problems {
        tracing::warn!("skipped {p}");
    }
    match args.format {
        Format::Json => print_json(&serde_json::to_value(&listing).unwrap_or_default()),
        Format::Text => {
            for p in &listing.packages {
                let Some(vs) = &p.versions else {
                    println!("{}", p.name);
                    continue;
                };
                for v in vs {
                    let Some(bs) = &v.builds else {
                        println!("{}/{}", p.name, v.version);
                        continue;
                    };
                    for b in bs {
                        let dep = if b.deprecated { "  (deprecated)" } else { "" };
                        println!("{}/{}/{}{dep}", p.name, v.version, b.build);
                    }
                }
            }
        }
    }
    Ok(())
}
