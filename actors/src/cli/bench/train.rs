//! `exspin bench train`: full fine-tuning speed. Each step is forward + the fused token log-prob
//! loss (mean NLL of next-token prediction) + backward + AdamW over every weight, on random token
//! batches, through the same `Model`, the fused LM-head log-prob op and `Optimizer` that `exspin sft` uses.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use candle_core::{DType, Device, Tensor};
use exspin::model::config::Config;
use exspin::model::{Model, load};
use exspin::train::{AdamWConfig, LrSchedule, Optimizer, OptimizerConfig, params_of};
use serde_json::json;

use crate::cli::args::compute::{self, ComputeArgs};

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  exspin bench train --shape qwen2-30m --batch 8 --seq 256 \
--threads 2 --json\n  exspin bench train --shape qwen2.5-coder-1.5b --device cuda --dtype bf16 \
--batch 8 --seq 512 --json"
)]
pub struct BenchTrainArgs {
    #[command(flatten)]
    pub source: ModelSource,
    #[command(flatten)]
    pub compute: ComputeArgs,
    /// Sequences per step.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Tokens per sequence.
    #[arg(long, default_value_t = 256)]
    pub seq: usize,
    /// Timed steps (after the warm-up steps).
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// Untimed steps first (allocations, kernel compilation, caches).
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// AdamW learning rate (constant).
    #[arg(long, default_value_t = 1e-4)]
    pub lr: f64,
    /// Seed of the random weights and tokens.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Random weights of a named shape, or real weights.
#[derive(clap::Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct ModelSource {
    /// A named shape with random weights: qwen2-tiny, llama-tiny, qwen2-30m, qwen2.5-coder-0.5b,
    /// qwen2.5-coder-1.5b.
    #[arg(long)]
    pub shape: Option<String>,
    /// Real weights: a Hugging Face folder or a .gguf file (dequantized).
    #[arg(long, value_name = "PATH")]
    pub model: Option<PathBuf>,
}

pub struct Built {
    pub model: Model,
    pub varmap: candle_nn::VarMap,
    pub config: Config,
    pub name: String,
}

impl ModelSource {
    pub fn build(&self, dtype: DType, device: &Device, seed: u64) -> anyhow::Result<Built> {
        if let Some(shape) = &self.shape {
            let config = Config::named(shape).with_context(|| {
                format!(
                    "--shape {shape:?} is not known; use one of {}",
                    Config::SHAPES.join(", ")
                )
            })?;
            if !device.is_cpu() {
                // candle's CPU generator cannot be seeded; a GPU's can.
                device.set_seed(seed)?;
            }
            let (model, varmap) = load::random_as(&config, dtype, device)
                .map_err(|e| compute::explain_oom(e.into(), "weight initialisation"))?;
            Ok(Built {
                model,
                varmap,
                config,
                name: shape.clone(),
            })
        } else if let Some(path) = &self.model {
            let lm = load::load(path, device)
                .with_context(|| format!("loading the model {}", path.display()))?;
            let (model, varmap) = if dtype == DType::F32 {
                (lm.model, lm.varmap)
            } else {
                let tensors = lm.model.named_tensors(false)?.into_iter().collect();
                load::from_tensors_as(&lm.config, &tensors, path, dtype, device)?
            };
            Ok(Built {
                model,
                varmap,
                config: lm.config,
                name: lm.name,
            })
        } else {
            anyhow::bail!("give --shape NAME or --model PATH")
        }
    }
}

/// Random token ids in [0, vocab) as a (rows, cols) u32 tensor, from a seeded host RNG.
pub fn random_tokens(
    rows: usize,
    cols: usize,
    vocab: usize,
    seed: u64,
    device: &Device,
) -> anyhow::Result<Tensor> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let ids: Vec<u32> = (0..rows * cols)
        .map(|_| rng.random_range(0..vocab as u32))
        .collect();
    Ok(Tensor::from_vec(ids, (rows, cols), device)?)
}

/// Mean next-token NLL of `ids` (b, t) under `model`, through the fused LM-head and token log-prob op.
pub fn lm_loss(model: &Model, ids: &Tensor) -> anyhow::Result<Tensor> {
    let (b, t) = ids.dims2()?;
    let mask = vec![vec![1u8; t]; b];
    let hidden = model.forward_hidden(ids, &mask, None)?;
    let h = hidden.dim(2)?;
    let hidden = hidden
        .narrow(1, 0, t - 1)?
        .contiguous()?
        .reshape((b * (t - 1), h))?;
    let targets = ids.narrow(1, 1, t - 1)?.contiguous()?.flatten_all()?;
    let lp = model.head_logprobs(&hidden, &targets)?;
    Ok(lp.mean_all()?.neg()?)
}

/// One timed step: (forward seconds since `t0`, loss).
fn train_step(
    model: &Model,
    trainer: &mut Optimizer,
    ids: &Tensor,
    device: &Device,
    t0: Instant,
) -> anyhow::Result<(f64, f32)> {
    let loss = lm_loss(model, ids)?;
    device.synchronize()?;
    let fwd = t0.elapsed().as_secs_f64();
    trainer.backward(&loss)?;
    device.synchronize()?;
    Ok((fwd, loss.to_dtype(DType::F32)?.to_scalar::<f32>()?))
}

pub fn run(args: BenchTrainArgs) -> anyhow::Result<()> {
    let (device, dtype, threads) = args.compute.open()?;
    anyhow::ensure!(
        args.batch > 0 && args.seq >= 2,
        "--batch must be ≥ 1 and --seq ≥ 2"
    );
    anyhow::ensure!(args.steps > 0, "--steps must be at least 1");
    exspin_kernels::alloc::reset_peak();
    let built = args.source.build(dtype, &device, args.seed)?;
    let params = built.config.num_params();
    if !args.json {
        eprintln!(
            "{}: {:.1}M parameters, {} {}, batch {} x {} tokens, {} threads",
            built.name,
            params as f64 / 1e6,
            compute::device_name(&device),
            compute::dtype_name(dtype),
            args.batch,
            args.seq,
            threads
        );
    }
    let trainer_cfg = OptimizerConfig {
        optim: AdamWConfig::default(),
        schedule: LrSchedule::constant(args.lr),
        grad_accum: 1,
        max_grad_norm: None,
    };
    let mut trainer = Optimizer::new(params_of(&built.varmap), trainer_cfg)?;
    let mut fwd_times = Vec::with_capacity(args.steps);
    let mut step_times = Vec::with_capacity(args.steps);
    let mut losses = Vec::with_capacity(args.steps);
    for i in 0..args.warmup + args.steps {
        let ids = random_tokens(
            args.batch,
            args.seq,
            built.config.vocab_size,
            args.seed.wrapping_add(1 + i as u64),
            &device,
        )?;
        device.synchronize()?;
        let t0 = Instant::now();
        let step = train_step(&built.model, &mut trainer, &ids, &device, t0)
            .map_err(|e| compute::explain_oom(e, "a training step"))?;
        let total = t0.elapsed().as_secs_f64();
        if i >= args.warmup {
            fwd_times.push(step.0);
            step_times.push(total);
            losses.push(step.1);
        }
        if !args.json {
            eprintln!(
                "{} step {}: {:.3} s (forward {:.3} s), loss {:.4}",
                if i < args.warmup { "warm-up" } else { "timed" },
                i,
                total,
                step.0,
                step.1
            );
        }
    }
    let tokens = (args.batch * args.seq) as f64;
    let total: f64 = step_times.iter().sum();
    let mean = total / step_times.len() as f64;
    let mut sorted = step_times.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let report = json!({
        "bench": "train",
        "model": built.name,
        "params": params,
        "device": compute::device_name(&device),
        "dtype": compute::dtype_name(dtype),
        "threads": threads,
        "batch": args.batch,
        "seq": args.seq,
        "warmup_steps": args.warmup,
        "steps": args.steps,
        "tokens_per_s": tokens * step_times.len() as f64 / total,
        "tokens_per_s_median_step": tokens / median,
        "step_s_mean": mean,
        "step_s_median": median,
        "step_s": step_times,
        "forward_s": fwd_times,
        "loss": losses,
        "peak_heap_bytes": compute::peak_heap_bytes(&device),
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "{:.1} tokens/s (median step {:.3} s, {} steps of {} tokens)",
            report["tokens_per_s"].as_f64().unwrap_or(0.0),
            median,
            args.steps,
            tokens
        );
    }
    Ok(())
}
