//! `spk messaging schema package|index`

use clap::ValueEnum;
use spk_messaging_core::message;

use crate::exit::CmdResult;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Kind {
    /// Package update messages.
    Package,
    /// Index status messages.
    Index,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    kind: Kind,
}

pub fn run(args: Args) -> CmdResult {
    let schema = match args.kind {
        Kind::Package => message::package_update_schema(),
        Kind::Index => message::index_status_schema(),
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&schema).map_err(anyhow::Error::from)?
    );
    Ok(())
}
