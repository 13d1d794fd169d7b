//! `cargo xtask ...`: the project's own tasks.
fn main() -> anyhow::Result<()> {
    anyhow::bail!("no task yet")
}
