//! (being written)
#[derive(clap::Args, Debug)]
pub struct BenchEvalArgs {}

pub fn run(_args: BenchEvalArgs) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
