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
    /// Explicit schema integration: recall of the schema filter, training the learned scorer.
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Print the prompt of one example (schema first, question last).
    Prompt(crate::cmd::prompt::PromptArgs),
    /// Build the value indexes (tantivy BM25) of every database of a dataset in the cache folder.
    Index(crate::cmd::index::IndexArgs),
    /// Predict one SQL query per question of a Spider split with a model (resumable).
    Generate(crate::cmd::generate::GenerateArgs),
    /// Supervised fine-tuning (full or LoRA) on the train split of a TOML job config (the SFT
    /// phase of `exspin run`); writes a Hugging Face folder (+ PEFT adapter) with the optimizer
    /// state.
    Sft(crate::cmd::sft::SftArgs),
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
    Run(crate::cmd::run::RunArgs),
    /// The paper's comparisons: SFT, SPIN, DPO, ExSPIN and the ablations on the same data, seed
    /// and budget, then a report (tables as Markdown, plots as SVG/PNG, raw numbers as JSON).
    Experiment(crate::cmd::experiment::ExperimentArgs),
    /// Continue a run from its newest checkpoint. Refuses when its config.toml or its data
    /// changed since the checkpoint was written.
    Resume(crate::cmd::run::ResumeArgs),
    /// Answer a question about any SQLite file: schema-integrated prompt, greedy generation, the
    /// SQL run in the read-only sandbox; prints the SQL and its result.
    Ask(crate::cmd::ask::AskArgs),
    /// Model tools: random checkpoints of named shapes, logits of a token sequence (used by the
    /// PyTorch parity script).
    #[command(subcommand)]
    Model(crate::cmd::model::ModelCommand),
    /// Benchmarks (speed is measured here, never in tests).
    #[command(subcommand)]
    Bench(BenchCommand),
}

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
    Synth(crate::cmd::synth::SynthArgs),
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Evaluation throughput against a plain Python sqlite3 loop doing the same executions.
    Eval(crate::cmd::bench_eval::BenchEvalArgs),
    /// Fused token log-prob kernels vs the plain candle composition (log_softmax → gather):
    /// forward and forward+backward time and peak memory, one JSON object with --json.
    Logprob(crate::cmd::bench_logprob::BenchLogprobArgs),
    /// Prompt build latency per question (p50/p99) with warm caches and value indexes.
    Prompt(crate::cmd::bench_prompt::BenchPromptArgs),
    /// The self-play pipeline streaming vs phased (generate all, then execute all, then train)
    /// on the same job: both wall times, their ratio, per-stage busy times and the share of SQL
    /// execution hidden by overlap. Each run uses a fresh temporary run folder.
    Pipeline(crate::cmd::bench_pipeline::BenchPipelineArgs),
    /// Full fine-tuning speed: forward + fused log-prob loss + backward + AdamW on random token
    /// batches, random weights of a named shape or real weights; tokens/s, step times, peak memory.
    Train(crate::cmd::bench_train::BenchTrainArgs),
    /// Batched greedy generation speed (new tokens/s) at several batch sizes, EOS ignored.
    Generate(crate::cmd::bench_generate::BenchGenerateArgs),
    /// Top-1 agreement of the dequantized f32 decoder with candle's quantized GGUF model,
    /// teacher-forced over given token sequences (e.g. the generations of `exspin generate`).
    QuantAgreement(crate::cmd::bench_quant::QuantAgreementArgs),
}

#[derive(Subcommand, Debug)]
pub enum SchemaCommand {
    /// How often the filtered schema keeps every gold table / column, value retrieval recall and
    /// precision, prompt length. Prints one JSON object.
    ///
    /// Example: exspin schema recall --spider data/spider --split dev --k1 4 --k2 10 --json
    Recall(crate::cmd::schema_recall::RecallArgs),
    /// Train the learned schema scorer on Spider train (train_spider*.json + tables.json) and save
    /// it in the cache folder, where it becomes the default scorer.
    ///
    /// Example: exspin schema train --spider data/spider
    Train(crate::cmd::schema_train::TrainArgs),
}

/// How prompts are built: cache, scorer, k1/k2, tokenizer, budget.
#[derive(Args, Debug, Clone)]
pub struct SchemaArgs {
    /// Cache folder (introspection, value indexes, the learned scorer). Never inside the dataset.
    #[arg(long, value_name = "DIR", default_value = ".cache/exspin")]
    pub cache: PathBuf,
    /// Schema scorer: auto (= lexical, the best measured; see BENCHMARKS.md), lexical, learned
    /// (after `exspin schema train`), embedding (after scripts/install-minilm.sh).
    #[arg(long, default_value = "auto")]
    pub scorer: String,
    /// Tables kept.
    #[arg(long, default_value_t = 4)]
    pub k1: usize,
    /// Columns kept per table (keys come on top).
    #[arg(long, default_value_t = 10)]
    pub k2: usize,
    /// Seed of the random table padding.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Pad with the next best tables instead of random ones (the paper pads randomly).
    #[arg(long)]
    pub ranked_padding: bool,
    /// Minimum share of a value that must occur in the question to be matched.
    #[arg(long, default_value_t = 0.9)]
    pub value_threshold: f32,
    /// The plain full-schema prompt (the ablation without explicit schema integration).
    #[arg(long)]
    pub full_schema: bool,
    /// Leave the representative values (`-- e.g. ...`) out of the explicit prompt's column
    /// comments (filtering, keys, comments and matched values stay).
    #[arg(long)]
    pub no_values: bool,
    /// tokenizer.json for token counts and the budget (default: $EXSPIN_TOKENIZER).
    #[arg(long, value_name = "FILE")]
    pub tokenizer: Option<PathBuf>,
    /// Token budget of a prompt (needs a tokenizer).
    #[arg(long, value_name = "TOKENS")]
    pub budget: Option<usize>,
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
    #[arg(long, value_name = "N", conflicts_with = "stratified")]
    pub limit: Option<usize>,
    /// A fixed subset of N evaluable examples, stratified by the official hardness level (the
    /// same N picks the same questions in `generate` and `eval`; output stays in dataset order).
    #[arg(long, value_name = "N")]
    pub stratified: Option<usize>,
}
