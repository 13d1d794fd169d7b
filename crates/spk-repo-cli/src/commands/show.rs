//! `spk repo show --repo R PKG/VERSION/BUILD [--no-index] [--format text|json]`
//!
//! Prints what the index holds for one build, which is what SPK's solver
//! sees: build options, install requirements with their version ranges,
//! components with their uses, requirements and embedded packages, the
//! published components. `--no-index` reads the same from the repository's
//! spec, as the index would store it, so an operator can compare the two.

use anyhow::anyhow;
use spk_messaging_core::PkgIdent;
use spk_repo::indexed::{BuildIndex, Component, ComponentSpec, Opt, PkgRequest, Requirement};
use spk_repo::listing::{self, From};
use spk_repo::spfs::SpfsRepo;

use crate::exit::CmdResult;
use crate::output::{print_json, Format};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Repository: a name (spfs's config or the SPK config), a path or a file: URL.
    #[arg(long, short = 'r', value_name = "REPO")]
    repo: String,
    /// The build: `name/version/build` (`src`, a digest, or `embedded[...]`).
    #[arg(value_name = "PKG/VERSION/BUILD")]
    build: String,
    /// Read the repository's spec, not the index.
    #[arg(long)]
    no_index: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub fn run(ctx: &super::Context, args: Args) -> CmdResult {
    // The build part may hold slashes (`embedded[parent/1.0.0/ABCDEFGH]`).
    let mut it = args.build.splitn(3, '/');
    let (Some(name), Some(version), Some(build)) = (it.next(), it.next(), it.next()) else {
        return Err(anyhow!(
            "{}: expected PKG/VERSION/BUILD, e.g. zlib/1.3.1/KQYBVT4U (`spk repo ls --repo R PKG/VERSION` lists the builds)",
            args.build
        )
        .into());
    };
    let id: PkgIdent = format!("{name}/{version}")
        .parse()
        .map_err(|e| anyhow!("{}: {e}", args.build))?;
    let q = super::ls::query(Some(&id))?;
    let version = q
        .version
        .ok_or_else(|| anyhow!("{}: no version", args.build))?;
    let (_cfg, resolved) = ctx.repo(&args.repo)?;
    let url = resolved.address.to_url();
    let index_path = spk_repo::index_path(resolved.address.path());
    let use_index = !args.no_index && resolved.config.use_index;
    let (b, problems, source) = if use_index && index_path.exists() {
        let index = spk_repo::fb::IndexFile::open(&index_path)
            .map_err(|e| anyhow!("{e}; `--no-index` reads the repository instead"))?;
        let (b, p) = listing::show(&From::Index(&index), name, &version, build, &url)
            .map_err(anyhow::Error::from)?;
        (b, p, format!("the index {}", index_path.display()))
    } else {
        let repo = SpfsRepo::open(resolved.address.path()).map_err(anyhow::Error::from)?;
        let (b, p) = listing::show(&From::Repository(&repo), name, &version, build, &url)
            .map_err(anyhow::Error::from)?;
        (b, p, format!("the repository {}", resolved.address))
    };
    for p in problems {
        tracing::warn!("skipped {p}");
    }
    match args.format {
        Format::Json => print_json(&serde_json::json!({
            "package": name,
            "source": source,
            "build": b,
        })),
        Format::Text => print!("{}", render(name, &b, &source)),
    }
    Ok(())
}

fn comps(c: &[Component]) -> String {
    c.iter()
        .map(Component::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

fn opt(o: &Opt) -> String {
    match o {
        Opt::Var(v) => {
            let mut s = format!("var {} = {:?}", v.name, v.value);
            if v.required {
                s.push_str(" required");
            }
            if v.inheritance != Default::default() {
                s.push_str(&format!(" inheritance {:?}", v.inheritance));
            }
            if let Some(c) = &v.compat {
                s.push_str(&format!(" compat {c}"));
            }
            s
        }
        Opt::Pkg(p) => {
            let mut s = format!("pkg {}", p.name);
            if !p.components.is_empty() {
                s.push_str(&format!(":{{{}}}", comps(&p.components)));
            }
            s.push_str(&format!(" = {:?}", p.value));
            if p.prerelease_policy != Default::default() {
                s.push_str(&format!(" prerelease {:?}", p.prerelease_policy));
            }
            s
        }
    }
}

fn pkg_request(p: &PkgRequest) -> String {
    let mut s = String::from("pkg ");
    if let Some(r) = &p.repo_name {
        s.push_str(&format!("{r}/"));
    }
    s.push_str(&p.name);
    if !p.components.is_empty() {
        s.push_str(&format!(":{{{}}}", comps(&p.components)));
    }
    if let Some(f) = &p.version_filter {
        s.push_str(&format!("/{}", spk_repo::v0::range_text(f)));
    }
    if let Some(b) = &p.build {
        s.push_str(&format!("/{b}"));
    }
    if p.prerelease_policy != Default::default() {
        s.push_str(&format!(" prerelease {:?}", p.prerelease_policy));
    }
    if p.inclusion_policy != Default::default() {
        s.push_str(&format!(" include {:?}", p.inclusion_policy));
    }
    if let Some(pin) = &p.pin {
        s.push_str(&format!(" pin {pin}"));
    }
    if p.pin_policy != Default::default() {
        s.push_str(&format!(" {:?}", p.pin_policy));
    }
    for o in &p.options {
        s.push_str(&format!(" [{}={}]", o.name, o.value));
    }
    s
}

fn requirement(r: &Requirement) -> String {
    match r {
        Requirement::Pkg(p) => pkg_request(p),
        Requirement::Var(v) => format!("var {} = {:?}", v.name, v.value),
    }
}

fn component(out: &mut String, indent: &str, c: &ComponentSpec) {
    out.push_str(&format!("{indent}{}", c.name));
    if !c.uses.is_empty() {
        out.push_str(&format!(" (uses {})", comps(&c.uses)));
    }
    out.push('\n');
    for r in &c.requirements {
        out.push_str(&format!("{indent}  requires {}\n", requirement(r)));
    }
    for e in &c.embedded {
        let v = e
            .version
            .as_ref()
            .map(|v| format!("/{v}"))
            .unwrap_or_default();
        out.push_str(&format!(
            "{indent}  embeds {}{v} :{{{}}}\n",
            e.name,
            comps(&e.components)
        ));
    }
}

/// The text form: one fact a line, sections indented.
pub fn render(name: &str, b: &BuildIndex, source: &str) -> String {
    let mut out = format!(
        "{name}/{}/{}   (from {source})\n",
        b.published_version, b.build
    );
    out.push_str(&format!(
        "  deprecated: {}\n  compat: {}\n",
        if b.deprecated { "yes" } else { "no" },
        b.compat.as_deref().unwrap_or("x.a.b (default)")
    ));
    if !b.build_options.is_empty() {
        out.push_str("  build options:\n");
        for o in &b.build_options {
            out.push_str(&format!("    {}\n", opt(o)));
        }
    }
    if !b.runtime_requirements.is_empty() {
        out.push_str("  install requirements:\n");
        for r in &b.runtime_requirements {
            out.push_str(&format!("    {}\n", requirement(r)));
        }
    }
    out.push_str(&format!(
        "  published components: {}\n",
        if b.published_components.is_empty() {
            "none".to_string()
        } else {
            comps(&b.published_components)
        }
    ));
    if !b.component_specs.is_empty() {
        out.push_str("  components:\n");
        for c in &b.component_specs {
            component(&mut out, "    ", c);
        }
    }
    for e in &b.embedded {
        out.push_str(&format!("  embedded package {}\n", e.ident));
        for o in &e.build_options {
            out.push_str(&format!("    option {}\n", opt(o)));
        }
        for r in &e.requirements {
            out.push_str(&format!("    requires {}\n", requirement(r)));
        }
        for c in &e.component_specs {
            component(&mut out, "    component ", c);
        }
    }
    out
}
