//! `exspin bench ...`: speed is measured here, never in tests; each figure against a baseline run
//! in the same command.

pub mod eval;
pub mod fleet;
pub mod generate;
pub mod logprob;
pub mod pairs;
pub mod pipeline;
pub mod prompt;
pub mod quant;
pub mod rollout;
pub mod train;
pub mod weights;

use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Evaluation throughput against a plain Python sqlite3 loop doing the same executions.
    Eval(eval::BenchEvalArgs),
    /// Fused token log-prob kernels vs the plain candle composition (log_softmax → gather):
    /// forward and forward+backward time and peak memory, one JSON object with --json.
    Logprob(logprob::BenchLogprobArgs),
    /// Prompt build latency per question (p50/p99) with warm caches and value indexes.
    Prompt(prompt::BenchPromptArgs),
    /// The self-play pipeline streaming vs phased (generate all, then execute all, then train)
    /// on the same job: both wall times, their ratio, per-stage busy times and the share of SQL
    /// execution hidden by overlap. Each run uses a fresh temporary run folder.
    Pipeline(pipeline::BenchPipelineArgs),
    /// Full fine-tuning speed: forward + fused log-prob loss + backward + AdamW on random token
    /// batches, random weights of a named shape or real weights; tokens/s, step times, peak memory.
    Train(train::BenchTrainArgs),
    /// Batched greedy generation speed (new tokens/s) at several batch sizes, EOS ignored.
    Generate(generate::BenchGenerateArgs),
    /// The opponent's rollout (samples + reference log-probs) the old way (a prefill per sample,
    /// every answer re-scored) and the new way (one prefill per prompt, shared schema prefix,
    /// log-probs from decoding) on the same prompts and seeds: samples/s of both and the speedup.
    Rollout(rollout::BenchRolloutArgs),
    /// The fleet on loopback: samples/s with 1, 2, 4, … workers hosting opponents, the scaling
    /// efficiency, and the head's ceiling (the same job with generation free).
    Fleet(fleet::BenchFleetArgs),
    /// Pair training the old way (every pair's prompt run for its gold and for its negative) and
    /// the new way (a prompt run once for its gold and all its negatives, forward and backward)
    /// on the same pairs: pairs/s of both, the speedup and the largest gradient difference.
    Pairs(pairs::BenchPairsArgs),
    /// Seconds to bring one published version (f32, bf16) to a fleet worker over the link, on
    /// loopback, against a local copy of the same folder.
    Weights(weights::BenchWeightsArgs),
    /// Top-1 agreement of the dequantized f32 decoder with candle's quantized GGUF model,
    /// teacher-forced over given token sequences (e.g. the generations of `exspin generate`).
    QuantAgreement(quant::QuantAgreementArgs),
}

pub fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Eval(args) => eval::run(args),
        BenchCommand::Logprob(args) => logprob::run(args),
        BenchCommand::Prompt(args) => prompt::run(args),
        BenchCommand::Pipeline(args) => pipeline::run(args),
        BenchCommand::Train(args) => train::run(args),
        BenchCommand::Generate(args) => generate::run(args),
        BenchCommand::QuantAgreement(args) => quant::run(args),
        BenchCommand::Rollout(args) => rollout::run(args),
        BenchCommand::Pairs(args) => pairs::run(args),
        BenchCommand::Fleet(args) => fleet::run(args),
        BenchCommand::Weights(args) => weights::run(args),
    }
}

/// The first N evaluable questions of a dataset as a model's prompt and gold-answer token ids.
pub struct BenchPrompts {
    pub examples: Vec<exspin::data::Example>,
    pub prompts: Vec<Vec<u32>>,
    pub golds: Vec<Vec<u32>>,
}

pub fn bench_prompts(
    lm: &exspin::model::load::LoadedModel,
    dataset: &crate::cli::args::DatasetArgs,
    mode: &crate::cli::args::PromptModeArgs,
    schema: &crate::cli::args::SchemaArgs,
    n: usize,
) -> anyhow::Result<BenchPrompts> {
    let data = crate::cli::args::dataset::load(dataset)?;
    let source = crate::cli::args::schema::schema_prompts(mode, dataset, &data, schema)?;
    let examples: Vec<_> = data
        .evaluable_examples()
        .map(|(_, e)| e.clone())
        .take(n)
        .collect();
    anyhow::ensure!(
        !examples.is_empty(),
        "no evaluable questions in the dataset"
    );
    let mut prompts = Vec::with_capacity(examples.len());
    let mut golds = Vec::with_capacity(examples.len());
    for ex in &examples {
        let text = source.schema_prompt(ex)?;
        prompts.push(exspin::prompt::prompt_ids(&lm.tokenizer, &lm.chat, &text)?);
        golds.push(exspin::prompt::answer_ids(
            &lm.tokenizer,
            &lm.chat,
            &ex.gold_sql,
        )?);
    }
    Ok(BenchPrompts {
        examples,
        prompts,
        golds,
    })
}
