//! `exspin model random` and `exspin model logits`: small tools the PyTorch parity script
//! (scripts/parity.py) drives. `random` writes a Hugging Face folder with seeded random weights
//! (every tensor random, norms and biases included, so none of them is a no-op); `logits` prints
//! the logits of one token sequence.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Context as _;
use candle_core::{Device, Tensor};
use exspin::model::checkpoint;
use exspin::model::config::Config;
use exspin::model::load;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use serde_json::json;

use crate::cli::args::compute::ThreadsArgs;

#[derive(clap::Subcommand, Debug)]
pub enum ModelCommand {
    /// Write a Hugging Face folder (config.json + model.safetensors) of a named shape with seeded
    /// random weights (matrices N(0, 0.02²), norm gains 1 + N(0, 0.1²), biases N(0, 0.02²)).
    ///
    /// Example: exspin model random --shape llama-tiny --out /tmp/llama-tiny --seed 1
    Random(RandomArgs),
    /// Logits of one token sequence (f32), one JSON object: {"shape": [t, vocab], "logits": [...]}.
    ///
    /// Example: exspin model logits --model /tmp/llama-tiny --tokens 1,2,3 --json
    Logits(LogitsArgs),
}

#[derive(clap::Args, Debug)]
pub struct RandomArgs {
    /// qwen2-tiny, llama-tiny, qwen2-30m, qwen2.5-coder-0.5b, qwen2.5-coder-1.5b.
    #[arg(long)]
    pub shape: String,
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(clap::Args, Debug)]
pub struct LogitsArgs {
    /// A Hugging Face folder (a tokenizer is not needed) or a .gguf file.
    #[arg(long, value_name = "PATH")]
    pub model: PathBuf,
    /// Token ids, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub tokens: Vec<u32>,
    #[command(flatten)]
    pub threads: ThreadsArgs,
    /// Print JSON (the only output format; accepted for symmetry with other commands).
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: ModelCommand) -> anyhow::Result<()> {
    match cmd {
        ModelCommand::Random(a) => random(a),
        ModelCommand::Logits(a) => logits(a),
    }
}

/// Seeded random weights for every tensor `cfg` implies.
pub fn seeded_tensors(cfg: &Config, seed: u64) -> anyhow::Result<HashMap<String, Tensor>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut out = HashMap::new();
    for (name, shape) in cfg.expected_tensors() {
        let n: usize = shape.iter().product();
        let (offset, std) = if name.ends_with("norm.weight") {
            (1.0, 0.1)
        } else {
            (0.0, 0.02)
        };
        let data: Vec<f32> = (0..n)
            .map(|_| offset + std * rng.sample::<f32, _>(StandardNormal))
            .collect();
        out.insert(name, Tensor::from_vec(data, shape, &Device::Cpu)?);
    }
    Ok(out)
}

fn random(args: RandomArgs) -> anyhow::Result<()> {
    let cfg = Config::named(&args.shape).with_context(|| {
        format!(
            "--shape {:?} is not known; use one of {}",
            args.shape,
            Config::SHAPES.join(", ")
        )
    })?;
    let tensors = seeded_tensors(&cfg, args.seed)?;
    let (model, _) = load::from_tensors(&cfg, &tensors, &args.out, &Device::Cpu)?;
    checkpoint::write_atomically(&args.out, |dir| {
        let p = dir.join("config.json");
        let text = serde_json::to_string_pretty(&cfg.to_hf_json()).expect("json");
        std::fs::write(&p, text)
            .map_err(|e| exspin::model::ModelError::Io { path: p, source: e })?;
        checkpoint::save_safetensors(&dir.join("model.safetensors"), model.named_tensors(false)?)
    })?;
    eprintln!(
        "wrote {} ({}, {} parameters)",
        args.out.display(),
        args.shape,
        cfg.num_params()
    );
    Ok(())
}

fn logits(args: LogitsArgs) -> anyhow::Result<()> {
    args.threads.apply()?;
    let dev = Device::Cpu;
    let model = if args.model.is_dir() {
        load::load_hf_weights(&args.model, &dev)?.1
    } else {
        load::load(&args.model, &dev)?.model
    };
    let t = args.tokens.len();
    let ids = Tensor::from_vec(args.tokens.clone(), (1, t), &dev)?;
    let logits = model.forward(&ids, &[vec![1u8; t]], None)?.squeeze(0)?;
    let shape = logits.dims().to_vec();
    let rows: Vec<Vec<f32>> = logits.to_vec2()?;
    println!(
        "{}",
        json!({ "tokens": args.tokens, "shape": shape, "logits": rows })
    );
    Ok(())
}
