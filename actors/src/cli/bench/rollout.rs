//! `exspin bench rollout`: the opponent's rollout (K samples per prompt and the reference
//! log-probs of the gold and of every sample) the old way and the new way, on the same prompts,
//! seeds and threads, in one process:
//!
//! * baseline: one input row per sample (each prefills the whole prompt), then every (prompt,
//!   gold) and (prompt, sample) row scored by a full forward;
//! * new (the opponent's path): one prefill per prompt, forked into its samples, its schema
//!   start from the prefix cache, continuous batching over `--chunk` rows, the samples'
//!   log-probs from decoding where a sample is its answer, and the rest scored on one prefill
//!   per prompt.
//!
//! Both paths draw the same samples (per-row seeds); the report says how many tokens and
//! log-probs agree, as a check that the speed is not bought with different work.
//!
//! `--compare denormals` runs the opponent's path both times instead: the baseline with IEEE
//! subnormals on rayon's threads (the default of a process), the new one with them flushed to
//! zero (what `exspin` does, `exspin::model::denormals`).

use std::time::Instant;

use anyhow::Context;
use exspin::model::continuous::generate_continuous;
use exspin::model::generate::{GenerateConfig, Generation, generate_cached};
use exspin::model::load;
use exspin::model::logprob::{Pair, response_logprobs};
use exspin::model::prefix_cache::PrefixCache;
use exspin::model::rollout::reference_logprobs;
use serde_json::json;

use super::{BenchPrompts, bench_prompts};
use crate::cli::args::{DatasetArgs, PromptModeArgs, SchemaArgs};

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Example:\n  exspin bench rollout --model qwen2.5-coder-0.5b-instruct-q4_k_m.gguf \
--spider data/spider --schema integrated --prompts 8 --samples 4 --threads 2 --json"
)]
pub struct BenchRolloutArgs {
    /// A Hugging Face folder or a .gguf file.
    #[arg(long, value_name = "PATH")]
    pub model: std::path::PathBuf,
    #[command(flatten)]
    pub dataset: DatasetArgs,
    #[command(flatten)]
    pub mode: PromptModeArgs,
    #[command(flatten)]
    pub schema: SchemaArgs,
    /// Prompts (the first N evaluable questions).
    #[arg(long, default_value_t = 8)]
    pub prompts: usize,
    /// Samples per prompt.
    #[arg(long, default_value_t = 4)]
    pub samples: usize,
    /// Prompts per generation call (as the opponent's batch).
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    /// Token budget per sample.
    #[arg(long, default_value_t = 96)]
    pub max_new_tokens: usize,
    /// Sampling temperature (the opponent's).
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
    /// Rows per scoring pass.
    #[arg(long, default_value_t = 16)]
    pub chunk: usize,
    /// Seed of the samples (per prompt and sample, as the opponent seeds them).
    #[arg(long, default_value_t = 0)]
    pub sample_seed: u64,
    /// What the baseline differs in: `path` (a prefill per sample and every answer re-scored,
    /// against the opponent's path) or `denormals` (the opponent's path both times, subnormal
    /// floats kept against flushed).
    #[arg(long, value_enum, default_value_t = Compare::Path)]
    pub compare: Compare,
    #[command(flatten)]
    pub compute: crate::cli::args::compute::ComputeArgs,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compare {
    Path,
    Denormals,
}

/// What one path produced: per prompt its gold log-prob, per sample its tokens and log-prob.
struct Outcome {
    gold: Vec<f32>,
    samples: Vec<(Vec<u32>, f32)>,
    seconds: f64,
    from_decoding: usize,
}

const SAMPLE_SEED: u64 = 0x9E37_79B9_7F4A_7C15;

pub fn run(args: BenchRolloutArgs) -> anyhow::Result<()> {
    let (device, dtype, threads) = args.compute.open()?;
    let lm = load::load_as(&args.model, dtype, &device)
        .with_context(|| format!("loading the model {}", args.model.display()))?;
    let BenchPrompts { prompts, golds, .. } =
        bench_prompts(&lm, &args.dataset, &args.mode, &args.schema, args.prompts)?;
    let k = args.samples.max(1);
    let cfg = GenerateConfig {
        max_new_tokens: args.max_new_tokens,
        temperature: args.temperature,
        n: k,
        ..GenerateConfig::default()
    };
    let prompt_seed = |p: usize| args.sample_seed ^ (p as u64).wrapping_mul(0x100_0000_01B3);
    let answers_of = |gens: &[Generation]| -> anyhow::Result<Vec<Vec<u32>>> {
        gens.iter()
            .map(|g| {
                Ok(exspin::prompt::answer_ids(
                    &lm.tokenizer,
                    &lm.chat,
                    &exspin::prompt::answer_sql(&lm.chat, &g.text),
                )?)
            })
            .collect()
    };
    let chunks: Vec<std::ops::Range<usize>> = (0..prompts.len())
        .step_by(args.batch.max(1))
        .map(|s| s..(s + args.batch.max(1)).min(prompts.len()))
        .collect();

    // The path before: a row per sample, then a full forward per scored row.
    let old_path = || -> anyhow::Result<Outcome> {
        let t0 = Instant::now();
        let mut out = Outcome {
            gold: Vec::new(),
            samples: Vec::new(),
            seconds: 0.0,
            from_decoding: 0,
        };
        let one = GenerateConfig {
            n: 1,
            share_prefix: false,
            ..cfg.clone()
        };
        let model = lm.model.detached();
        for range in &chunks {
            let (mut rows, mut seeds) = (Vec::new(), Vec::new());
            for p in range.clone() {
                for s in 0..k {
                    rows.push(prompts[p].clone());
                    seeds.push(prompt_seed(p) ^ (s as u64).wrapping_mul(SAMPLE_SEED));
                }
            }
            let gens = generate_cached(
                &model,
                &lm.tokenizer,
                &lm.special,
                &rows,
                Some(&seeds),
                &one,
                None,
            )?;
            let answers = answers_of(&gens)?;
            let mut pairs: Vec<Pair> = range
                .clone()
                .map(|p| Pair {
                    prompt: prompts[p].clone(),
                    response: golds[p].clone(),
                })
                .collect();
            for (g, a) in gens.iter().zip(&answers) {
                pairs.push(Pair {
                    prompt: rows[g.prompt].clone(),
                    response: a.clone(),
                });
            }
            let mut scores = Vec::with_capacity(pairs.len());
            for part in pairs.chunks(args.chunk.max(1)) {
                let lp = response_logprobs(&model, part, lm.special.pad)?;
                scores.extend(lp.sum.to_vec1::<f32>()?);
            }
            out.gold.extend_from_slice(&scores[..range.len()]);
            for (i, g) in gens.iter().enumerate() {
                out.samples
                    .push((g.tokens.clone(), scores[range.len() + i]));
            }
        }
        device.synchronize()?;
        out.seconds = t0.elapsed().as_secs_f64();
        Ok(out)
    };

    // The opponent's: one prefill per prompt, the shared start once (and cached), decoding's
    // log-probs.
    let opponent_path =
        || -> anyhow::Result<(Outcome, exspin::model::prefix_cache::PrefixStats)> {
            let t0 = Instant::now();
            let mut cache = PrefixCache::new(1 << 30);
            let mut out = Outcome {
                gold: Vec::new(),
                samples: Vec::new(),
                seconds: 0.0,
                from_decoding: 0,
            };
            for range in &chunks {
                let ps = &prompts[range.clone()];
                let seeds: Vec<u64> = range.clone().map(prompt_seed).collect();
                let gens = generate_continuous(
                    &lm.model,
                    &lm.tokenizer,
                    &lm.special,
                    ps,
                    Some(&seeds),
                    &cfg,
                    args.chunk.max(k),
                    Some(&mut cache),
                )?;
                let answers = answers_of(&gens)?;
                let r = reference_logprobs(
                    &lm.model,
                    true,
                    lm.special.pad,
                    ps,
                    &golds[range.clone()],
                    &gens,
                    &answers,
                    args.chunk,
                    Some(&mut cache),
                )?;
                out.gold.extend(r.gold);
                out.from_decoding += r.from_decoding;
                for (g, lp) in gens.iter().zip(r.generations) {
                    out.samples.push((g.tokens.clone(), lp));
                }
            }
            device.synchronize()?;
            out.seconds = t0.elapsed().as_secs_f64();
            Ok((out, cache.stats()))
        };

    use exspin::model::denormals::set_flush_everywhere;
    let (baseline, (new, cache_stats)) = match args.compare {
        Compare::Path => {
            set_flush_everywhere(true);
            (old_path()?, opponent_path()?)
        }
        Compare::Denormals => {
            set_flush_everywhere(false);
            let kept = opponent_path()?.0;
            set_flush_everywhere(true);
            (kept, opponent_path()?)
        }
    };

    let n_samples = baseline.samples.len();
    let same_tokens = baseline
        .samples
        .iter()
        .zip(&new.samples)
        .filter(|(a, b)| a.0 == b.0)
        .count();
    let max_diff = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max)
    };
    let (bl, nl): (Vec<f32>, Vec<f32>) = baseline
        .samples
        .iter()
        .zip(&new.samples)
        .filter(|(a, b)| a.0 == b.0)
        .map(|(a, b)| (a.1, b.1))
        .unzip();
    let report = json!({
        "model": args.model.display().to_string(),
        "schema": args.mode.mode.name(),
        "threads": threads,
        "device": format!("{device:?}"),
        "compare": match args.compare { Compare::Path => "path", Compare::Denormals => "denormals" },
        "prompts": prompts.len(),
        "samples_per_prompt": k,
        "prompt_tokens_mean": prompts.iter().map(Vec::len).sum::<usize>() as f64 / prompts.len() as f64,
        "baseline": { "seconds": baseline.seconds, "samples_per_s": n_samples as f64 / baseline.seconds },
        "new": { "seconds": new.seconds, "samples_per_s": n_samples as f64 / new.seconds,
                 "logprobs_from_decoding": new.from_decoding,
                 "prefix_cache_hits": cache_stats.hits, "prefix_tokens_reused": cache_stats.reused_tokens },
        "speedup": baseline.seconds / new.seconds,
        "same_sample_tokens": format!("{same_tokens}/{n_samples}"),
        "max_gold_logprob_diff": max_diff(&baseline.gold, &new.gold),
        "max_sample_logprob_diff": max_diff(&bl, &nl),
    });
    if args.json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}
