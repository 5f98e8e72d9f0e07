//! `exspin sft CONFIG.toml --out DIR`: supervised fine-tuning (full or LoRA) on the train split of
//! a job config, the same SFT phase `exspin run` does before its rounds (the same prompts, model
//! set-up and loop, `exspin_actors::real::setup`), without the dev passes around it. Writes a
//! Hugging Face folder to DIR (a PEFT adapter in DIR/adapter with LoRA) with the optimizer state.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use exspin::data::Example;
use exspin::model::checkpoint;
use exspin_actors::config::{JobConfig, ModelSource};
use exspin_actors::device::Compute;
use exspin_actors::prompts::Prompter;
use exspin_actors::real::setup;
use exspin_actors::runtime;

const TOML_HELP: &str = "The config is the TOML job config `exspin run` reads; sft uses its \
[data] (source, path, train_limit, synthetic_*), [model] (kind, path or the tiny shape, schema, \
schema_k1, schema_k2, schema_values, device, dtype, max_grad_norm, lora) and [sft] (epochs or \
steps, batch_size, lr, warmup_steps, log_every) sections, and run.seed (the shuffle). See \
configs/demo.toml.";

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Example:\n  exspin sft configs/demo.toml --out runs/sft\n\n\
The config is the TOML job config `exspin run` reads: [data] (the train split), [model] (kind, \
path or the tiny shape, schema, device, dtype, max_grad_norm, [model.lora]) and [sft] (epochs or \
steps, batch_size, lr, warmup_steps, log_every); run.seed seeds the shuffle. The JSON config of \
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
    #[command(flatten)]
    pub threads: super::compute::ThreadsArgs,
}

pub fn run(args: SftArgs) -> anyhow::Result<()> {
    args.threads.apply()?;
    anyhow::ensure!(
        args.config.extension().is_none_or(|e| e != "json"),
        "{}: the JSON form of the sft config was removed. {TOML_HELP}",
        args.config.display()
    );
    let (config, _) = JobConfig::load(&args.config).with_context(|| TOML_HELP.to_string())?;
    anyhow::ensure!(
        !config.model.is_fake(),
        "{}: model.kind = \"fake\" has nothing to fine-tune; use tiny, random or pretrained",
        args.config.display()
    );
    // The synthetic dataset is generated once per data section, into the cache.
    let data_key = runtime::sha256_hex(toml::to_string(&config.data)?.as_bytes());
    let work = args.cache.join(format!("sft-data-{}", &data_key[..16]));
    let (train, _dev) = runtime::load_data(&config, &work)?;
    let prompter = Prompter::new(&config.model, &train, &args.cache)?;
    let items: Vec<(&Example, String)> = train
        .evaluable_examples()
        .map(|(_, e)| Ok((e, prompter.prompt(e)?)))
        .collect::<anyhow::Result<_>>()?;
    let m = &config.model;
    let compute = Compute::from_config(m.device, m.dtype, config.run.seed)?;
    let mut lm = setup::initial_model(&config, &items, &compute)?;
    let pairs = setup::sft_pairs(&lm, &items)?;
    if let Some(path) = &args.tokens_out {
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        );
        for p in &pairs {
            let row = serde_json::json!({ "prompt": p.prompt, "response": p.response });
            writeln!(f, "{row}")?;
        }
        f.flush()?;
    }
    eprintln!(
        "sft: {} train pairs, template {:?}, {} prompt",
        pairs.len(),
        lm.chat,
        m.schema
    );
    let outcome = setup::train_sft(&config, &mut lm, &pairs)?;
    let trainer = outcome.trainer.with_context(|| {
        format!(
            "{}: no SFT step to run ({} train pairs): set sft.epochs or sft.steps above 0",
            args.config.display(),
            pairs.len()
        )
    })?;
    let base = match &m.source {
        ModelSource::Pretrained { path } => path.display().to_string(),
        _ => m.kind().name().to_string(),
    };
    checkpoint::write_atomically(&args.out, |dir| {
        checkpoint::write_hf_files(dir, &lm.model, &lm.tokenizer, &lm.special, &lm.chat, true)?;
        if let Some(l) = &m.lora {
            let ad = dir.join("adapter");
            std::fs::create_dir_all(&ad).map_err(|e| exspin::model::ModelError::Io {
                path: ad.clone(),
                source: e,
            })?;
            checkpoint::write_adapter_files(&ad, &mut lm.model, l, &base)?;
        }
        trainer.save_state(dir)
    })?;
    eprintln!(
        "wrote {} ({} steps, loss {:?} → {:?})",
        args.out.display(),
        outcome.steps,
        outcome.first_loss,
        outcome.last_loss
    );
    Ok(())
}
