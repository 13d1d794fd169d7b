//! Output format shared by commands.

use clap::ValueEnum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    #[default]
    Text,
    Json,
}

/// Prints a JSON value on one line to stdout.
pub fn print_json(v: &serde_json::Value) {
    println!("{v}");
}
