//! Datasets, SQL and evaluation: `exspin data synth`, `exspin sql`, `exspin eval`.

pub mod eval;
pub mod sql;
pub mod synth;

use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Write the embedded synthetic dataset in the Spider layout (dev.json, train_spider.json,
    /// tables.json, database/<db>/<db>.sqlite). Same seed, same bytes.
    ///
    /// Eight small SQLite databases from everyday domains (five for train, three others for dev)
    /// and template questions of the paper's six query types (equality on a key, equality on
    /// another column, join, aggregate with GROUP BY, join with aggregate and GROUP BY, nested);
    /// every gold query is executed while generating and kept only if it returns rows. Each record
    /// carries its intended `query_type`. The same seed gives byte-identical files.
    ///
    /// Prints a summary (databases, examples per split and per type) on stdout, JSON with --json;
    /// progress goes to stderr.
    ///
    /// Example: exspin data synth --out data/synth --seed 7 --train 3000 --dev 600
    Synth(synth::SynthArgs),
}

pub fn run(command: DataCommand) -> anyhow::Result<()> {
    match command {
        DataCommand::Synth(args) => synth::run(args),
    }
}
