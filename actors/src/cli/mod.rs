//! Command-line grammar. Every subcommand's `--help` should teach: what it does, what it reads and
//! writes, and an example.

pub mod args;
pub mod bench;
pub mod data;
pub mod experiment;
pub mod model;
pub mod run;
pub mod schema;
pub mod worker;

use clap::{Parser, Subcommand};

use bench::BenchCommand;
use data::DataCommand;
use schema::SchemaCommand;

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
    Sql(data::sql::SqlArgs),
    /// Execution accuracy of a predictions file (official Spider / BIRD semantics).
    Eval(data::eval::EvalArgs),
    /// Explicit schema integration: recall of the schema filter, training the learned scorer.
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Print the prompt of one example (schema first, question last).
    Prompt(schema::prompt::PromptArgs),
    /// Build the value indexes (tantivy BM25) of every database of a dataset in the cache folder.
    Index(schema::index::IndexArgs),
    /// Predict one SQL query per question of a Spider split with a model (resumable).
    Generate(model::generate::GenerateArgs),
    /// Supervised fine-tuning (full or LoRA) on the train split of a TOML job config (the SFT
    /// phase of `exspin run`); writes a Hugging Face folder (+ PEFT adapter) with the optimizer
    /// state.
    Sft(model::sft::SftArgs),
    /// Self-play fine-tuning: the streaming runtime (prompt builder, opponent, SQL executor,
    /// replay buffer, trainer, evaluator under a supervisor).
    ///
    /// Writes RUN_DIR/summary.json (rounds, pairs trained, every trained sample id in order, dev
    /// execution accuracy per round, restarts), RUN_DIR/metrics.jsonl (one line per train step)
    /// and RUN_DIR/checkpoints/ (every N steps and on SIGTERM/SIGINT, which then stop the run).
    /// With a real model (model.kind = "tiny" or "pretrained", as in configs/demo.toml) an SFT
    /// phase runs first: RUN_DIR/sft.json holds the dev accuracy before and after it, and
    /// RUN_DIR/weights/v{t} every published version (v0 = after SFT). configs/demo-fake.toml runs
    /// the same job on the fake model in seconds.
    Run(run::RunArgs),
    /// The paper's comparisons: SFT, SPIN, DPO, ExSPIN and the ablations on the same data, seed
    /// and budget, then a report (tables as Markdown, plots as SVG/PNG, raw numbers as JSON).
    Experiment(experiment::ExperimentArgs),
    /// A fleet node for a head (`exspin run ... --listen HOST:PORT --cookie-file F`): hosts
    /// opponents that answer the head's prompts with the job's model, and SQL executors that
    /// judge its generations against this node's copy of the databases.
    Worker(worker::WorkerArgs),
    /// Continue a run from its newest checkpoint. Refuses when its config.toml or its data
    /// changed since the checkpoint was written.
    Resume(run::ResumeArgs),
    /// Answer a question about any SQLite file: schema-integrated prompt, greedy generation, the
    /// SQL run in the read-only sandbox; prints the SQL and its result.
    Ask(model::ask::AskArgs),
    /// Model tools: random checkpoints of named shapes, logits of a token sequence (used by the
    /// PyTorch parity script).
    #[command(subcommand)]
    Model(model::tools::ModelCommand),
    /// Benchmarks (speed is measured here, never in tests).
    #[command(subcommand)]
    Bench(BenchCommand),
}

pub fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Data(cmd) => data::run(cmd),
        Command::Sql(args) => data::sql::run(args),
        Command::Eval(args) => data::eval::run(args),
        Command::Schema(cmd) => schema::run(cmd),
        Command::Prompt(args) => schema::prompt::run(args),
        Command::Index(args) => schema::index::run(args),
        Command::Generate(args) => model::generate::run(args),
        Command::Sft(args) => model::sft::run(args),
        Command::Run(args) => run::run(args),
        Command::Experiment(args) => experiment::run(args),
        Command::Resume(args) => run::resume(args),
        Command::Worker(args) => worker::run(args),
        Command::Ask(args) => model::ask::run(args),
        Command::Model(cmd) => model::tools::run(cmd),
        Command::Bench(cmd) => bench::run(cmd),
    }
}
