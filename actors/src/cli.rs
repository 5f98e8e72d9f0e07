//! Command-line grammar. Every subcommand's `--help` should teach: what it does, what it reads and
//! writes, and an example.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "exspin",
    version,
    about = "Explicit-feedback self-play fine-tuning for text-to-SQL",
    long_about = "exspin fine-tunes small code models for text-to-SQL by self-play with execution \
feedback (ExSPIN). It also evaluates predictions with the official Spider/BIRD semantics, runs SQL in \
a read-only sandbox, and generates a synthetic dataset to try everything on.\n\n\
Results are printed on stdout (JSON with --json); progress and logs go to stderr \
(more with -v, or EXSPIN_LOG=debug)."
)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Dataset tools (generate the embedded synthetic default).
    #[command(subcommand)]
    Data(DataCommand),
    /// Run one SQL query through the sandboxed executor and print its typed outcome.
    Sql(crate::cmd::sql::SqlArgs),
    /// Execution accuracy of a predictions file (official Spider / BIRD semantics).
    Eval(crate::cmd::eval::EvalArgs),
    /// Predict one SQL query per question of a Spider split with a model (resumable).
    Generate(crate::cmd::generate::GenerateArgs),
    /// Supervised fine-tuning (full or LoRA) on a Spider split, from a JSON run config; writes a
    /// Hugging Face folder (+ PEFT adapter) with the optimizer state.
    Sft(crate::cmd::sft::SftArgs),
    /// Benchmarks (speed is measured here, never in tests).
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Write the embedded synthetic dataset in the Spider layout (dev.json, train_spider.json,
    /// tables.json, database/<db>/<db>.sqlite). Same seed, same bytes.
    Synth(crate::cmd::synth::SynthArgs),
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Evaluation throughput against a plain Python sqlite3 loop doing the same executions.
    Eval(crate::cmd::bench_eval::BenchEvalArgs),
}

/// Where a dataset comes from: exactly one of --spider, --bird, --jsonl.
#[derive(Args, Debug, Clone)]
pub struct DatasetArgs {
    /// A Spider-layout folder (dev.json, tables.json, database/).
    #[arg(long, value_name = "DIR", group = "dataset")]
    pub spider: Option<PathBuf>,
    /// A BIRD-layout folder (dev.json, dev_tables.json, dev_databases/ or database/).
    #[arg(long, value_name = "DIR", group = "dataset")]
    pub bird: Option<PathBuf>,
    /// A JSONL file of {"id","db_id","question","evidence","sql"} records.
    #[arg(long, value_name = "FILE", group = "dataset")]
    pub jsonl: Option<PathBuf>,
    /// With --jsonl: the folder holding <db_id>/<db_id>.sqlite (default: database/ beside the file).
    #[arg(long, value_name = "DIR", requires = "jsonl")]
    pub db_dir: Option<PathBuf>,
    /// Which split to read (Spider: dev, train; BIRD: dev, mini_dev).
    #[arg(long, default_value = "dev")]
    pub split: String,
    /// Only the first N examples.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}
