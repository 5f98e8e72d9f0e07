//! `exspin bench generate`: batched greedy decoding speed. Random prompts of `--prompt-len` tokens
//! are prefilled together, then exactly `--new-tokens` tokens per row are produced one step at a
//! time from the KV cache (EOS is ignored), through the same `forward_hidden` / `logits` /
//! `KvCache` calls as `exspin::model::generate`, minus detokenization and stop strings.

use std::time::Instant;

use candle_core::{D, Device, Tensor};
use exspin::model::{KvCache, Model};
use serde_json::{Value, json};

use super::train::{ModelSource, random_tokens};
use crate::cli::args::compute::{self, ComputeArgs};

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  exspin bench generate --model qwen2.5-coder-0.5b-instruct-q4_k_m.gguf \
--batch 1,8 --new-tokens 64 --threads 2 --json\n  exspin bench generate --shape qwen2.5-coder-1.5b \
--device cuda --dtype bf16 --batch 1,8 --json"
)]
pub struct BenchGenerateArgs {
    #[command(flatten)]
    pub source: ModelSource,
    #[command(flatten)]
    pub compute: ComputeArgs,
    /// Batch sizes to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    pub batch: Vec<usize>,
    /// Prompt tokens per row (random ids).
    #[arg(long, default_value_t = 32)]
    pub prompt_len: usize,
    /// New tokens per row (exactly this many: EOS is ignored).
    #[arg(long, default_value_t = 64)]
    pub new_tokens: usize,
    /// Timed repetitions per batch size (after one untimed warm-up); the median is reported.
    #[arg(long, default_value_t = 1)]
    pub reps: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Greedy decoding of `prompt` (b, p): returns (generated ids per row, prefill seconds, total
/// seconds). The device is synchronized before each clock reading.
pub fn greedy(
    model: &Model,
    prompt: &Tensor,
    new_tokens: usize,
) -> anyhow::Result<(Vec<Vec<u32>>, f64, f64)> {
    let device = model.device();
    let (b, p) = prompt.dims2()?;
    let mut cache = KvCache::new();
    device.synchronize()?;
    let t0 = Instant::now();
    let mut input = prompt.clone();
    let mut mask = vec![vec![1u8; p]; b];
    let mut out: Vec<Tensor> = Vec::with_capacity(new_tokens);
    let mut prefill = 0.0;
    for step in 0..new_tokens {
        let hidden = model.forward_hidden(&input, &mask, Some(&mut cache))?;
        let t = hidden.dim(1)?;
        let logits = model.logits(&hidden.narrow(1, t - 1, 1)?.squeeze(1)?)?;
        let next = logits.argmax(D::Minus1)?; // (b,) u32, stays on the device
        if step == 0 {
            device.synchronize()?;
            prefill = t0.elapsed().as_secs_f64();
            mask = vec![vec![1u8]; b];
        }
        input = next.reshape((b, 1))?;
        out.push(input.clone());
    }
    let ids = Tensor::cat(&out, 1)?.to_vec2::<u32>()?;
    device.synchronize()?;
    Ok((ids, prefill, t0.elapsed().as_secs_f64()))
}

fn measure(
    args: &BenchGenerateArgs,
    model: &Model,
    vocab: usize,
    b: usize,
) -> anyhow::Result<Value> {
    let device: &Device = model.device();
    let prompt = random_tokens(b, args.prompt_len, vocab, args.seed ^ b as u64, device)?;
    // Warm-up: a short run at the same batch size.
    greedy(model, &prompt, args.new_tokens.min(4))?;
    let mut runs = Vec::with_capacity(args.reps);
    for _ in 0..args.reps.max(1) {
        let (ids, prefill, total) = greedy(model, &prompt, args.new_tokens)?;
        anyhow::ensure!(
            ids.iter().all(|r| r.len() == args.new_tokens),
            "internal: a row did not get {} tokens",
            args.new_tokens
        );
        runs.push((prefill, total));
    }
    runs.sort_by(|a, b| a.1.total_cmp(&b.1));
    let (prefill, total) = runs[runs.len() / 2];
    let new = (b * args.new_tokens) as f64;
    let decode = total - prefill;
    Ok(json!({
        "batch": b,
        "new_tokens_per_row": args.new_tokens,
        "prompt_len": args.prompt_len,
        "total_s": total,
        "prefill_s": prefill,
        "new_tokens_per_s": new / total,
        // Tokens made by the decode steps alone (the first comes from the prefill).
        "decode_tokens_per_s": if decode > 0.0 { (b * (args.new_tokens - 1)) as f64 / decode } else { 0.0 },
        "ms_per_step": decode * 1e3 / (args.new_tokens.max(2) - 1) as f64,
        "reps": args.reps.max(1),
    }))
}

pub fn run(args: BenchGenerateArgs) -> anyhow::Result<()> {
    let (device, dtype, threads) = args.compute.open()?;
    anyhow::ensure!(
        args.prompt_len > 0 && args.new_tokens > 0,
        "--prompt-len and --new-tokens must be at least 1"
    );
    anyhow::ensure!(
        !args.batch.is_empty() && args.batch.iter().all(|&b| b > 0),
        "--batch takes sizes ≥ 1"
    );
    exspin_kernels::alloc::reset_peak();
    let built = args.source.build(dtype, &device, args.seed)?;
    // No gradients are needed: detached weights keep no autograd graph alive through the cache.
    let mut model = built.model.clone();
    model.freeze_base();
    let mut results = Vec::new();
    for &b in &args.batch {
        let r = measure(&args, &model, built.config.vocab_size, b)
            .map_err(|e| compute::explain_oom(e, &format!("generation at batch {b}")))?;
        if !args.json {
            eprintln!(
                "batch {b}: {:.1} new tokens/s ({:.2} s total, prefill {:.3} s, {:.1} ms/step)",
                r["new_tokens_per_s"].as_f64().unwrap_or(0.0),
                r["total_s"].as_f64().unwrap_or(0.0),
                r["prefill_s"].as_f64().unwrap_or(0.0),
                r["ms_per_step"].as_f64().unwrap_or(0.0),
            );
        }
        results.push(r);
    }
    let report = json!({
        "bench": "generate",
        "model": built.name,
        "params": built.config.num_params(),
        "device": compute::device_name(&device),
        "dtype": compute::dtype_name(dtype),
        "threads": threads,
        "greedy": true,
        "results": results,
        "peak_heap_bytes": compute::peak_heap_bytes(&device),
    });
    if args.json {
        println!("{report}");
    }
    Ok(())
}
