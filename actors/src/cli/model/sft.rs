//! `exspin sft CONFIG.toml --out DIR`: supervised fine-tuning (full or LoRA) on the train split of
//! a job config, the same SFT phase `exspin run` does before its rounds (the same prompts, model
//! set-up and loop, `exspin_actors::sft`), without the dev passes around it. Writes a
//! Hugging Face folder to DIR (a PEFT adapter in DIR/adapter with LoRA) with the optimizer state.

use std::path::PathBuf;

use anyhow::Context;
use exspin_actors::config::{DeviceSpec, JobConfig, WeightDType};
use exspin_actors::sft::SftJob;

const TOML_HELP: &str = "The config is the TOML job config `exspin run` reads; sft uses its \
[data] (source, path, train_limit, synthetic_*), [model] (kind, path or the tiny shape, schema, \
schema_k1, schema_k2, schema_values, device, dtype, max_grad_norm, lora) and [sft] (epochs or \
steps, batch_size, lr, warmup_steps, log_every, seed) sections, and run.seed (the shuffle when \
sft.seed is not set). See \
configs/demo.toml.";

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Example:\n  exspin sft configs/demo.toml --out runs/sft\n\n\
The config is the TOML job config `exspin run` reads: [data] (the train split), [model] (kind, \
path or the tiny shape, schema, device, dtype, max_grad_norm, [model.lora]) and [sft] (epochs or \
steps, batch_size, lr, warmup_steps, log_every, seed); sft.seed (default: run.seed) seeds the \
shuffle. The JSON config of \
earlier versions is gone."
)]
pub struct SftArgs {
    /// The TOML job config (as `exspin run`).
    #[arg(value_name = "CONFIG.toml")]
    pub config: PathBuf,
    /// The Hugging Face folder to write (replaced atomically at the end).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Cache folder: schema introspection and value indexes, and the synthetic dataset when
    /// data.source = "synthetic". Never inside the dataset.
    #[arg(long, value_name = "DIR", default_value = ".cache/exspin")]
    pub cache: PathBuf,
    /// Also write {"prompt": [ids], "response": [ids]} per training pair to this JSONL file.
    #[arg(long, value_name = "FILE")]
    pub tokens_out: Option<PathBuf>,
    /// Where to train: cpu, cuda or cuda:N (default: the config's model.device).
    #[arg(long)]
    pub device: Option<DeviceSpec>,
    /// Weight dtype, f32 or bf16 (default: the config's model.dtype).
    #[arg(long, value_enum)]
    pub dtype: Option<WeightDType>,
    #[command(flatten)]
    pub threads: crate::cli::args::compute::ThreadsArgs,
}

pub fn run(args: SftArgs) -> anyhow::Result<()> {
    args.threads.apply()?;
    anyhow::ensure!(
        args.config.extension().is_none_or(|e| e != "json"),
        "{}: the JSON form of the sft config was removed. {TOML_HELP}",
        args.config.display()
    );
    let (mut config, _) = JobConfig::load(&args.config).with_context(|| TOML_HELP.to_string())?;
    if let Some(device) = args.device {
        config.model.device = device;
    }
    if let Some(dtype) = args.dtype {
        config.model.dtype = dtype;
    }
    config
        .validate()
        .with_context(|| format!("{} with --device/--dtype", args.config.display()))?;
    let job = SftJob::prepare(config, &args.cache)
        .with_context(|| format!("preparing SFT from {}", args.config.display()))?;
    if let Some(path) = &args.tokens_out {
        job.write_pairs(path)?;
    }
    eprintln!("sft: {}", job.describe());
    let done = job
        .train_into(&args.out)
        .with_context(|| format!("{}", args.config.display()))?;
    eprintln!(
        "wrote {} ({} steps, loss {:?} → {:?})",
        args.out.display(),
        done.steps,
        done.first_loss,
        done.last_loss
    );
    Ok(())
}
