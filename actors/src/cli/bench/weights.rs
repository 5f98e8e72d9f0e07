//! `exspin bench weights --model M --dtypes f32,bf16`: seconds to bring one published version to
//! a fleet worker over the link (see `exspin_actors::bench::weights`).

use std::path::PathBuf;

use exspin_actors::config::WeightDType;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Example: exspin bench weights --model qwen2.5-coder-0.5b-instruct-q4_k_m.gguf --dtypes f32,bf16 --json\n\n\
This process serves the version as a head does; each transfer is a worker child process \
(`exspin worker --fetch-weights`) on loopback. The baseline is a local copy of the same folder \
with the same hashing."
)]
pub struct BenchWeightsArgs {
    /// A Hugging Face folder or a .gguf file, written as a version folder in each dtype.
    #[arg(long, value_name = "PATH")]
    pub model: PathBuf,
    /// Weight dtypes of the published version (f32, bf16).
    #[arg(long, value_delimiter = ',', default_value = "f32,bf16", value_enum)]
    pub dtypes: Vec<WeightDType>,
    /// Publish LoRA adapters of this rank on q/k/v/o (what a LoRA run's worker copies: the
    /// adapter alone) instead of the merged weights.
    #[arg(long, value_name = "R")]
    pub lora_rank: Option<usize>,
    /// Transfers per dtype (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// One JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: BenchWeightsArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let lora = args.lora_rank.map(|rank| exspin::model::lora::LoraConfig {
        rank,
        alpha: 2.0 * rank as f64,
        dropout: 0.0,
        ..Default::default()
    });
    let runs = exspin_actors::bench::weights::bench(
        &args.model,
        &args.dtypes,
        lora.as_ref(),
        args.reps,
        &exe,
    )?;
    let v = serde_json::json!({
        "model": args.model.display().to_string(),
        "runs": runs,
    });
    if args.json {
        println!("{v}");
    } else {
        println!("{}", serde_json::to_string_pretty(&v)?);
    }
    Ok(())
}
