//! (being written)
#[derive(clap::Args, Debug)]
pub struct SqlArgs {}

pub fn run(_args: SqlArgs) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
