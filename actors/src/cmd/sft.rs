//! `exspin sft CONFIG`: supervised fine-tuning (full or LoRA) of a model on a Spider split's
//! (question, gold SQL) pairs; writes a Hugging Face folder (and a PEFT adapter with LoRA) with the
//! optimizer state beside it.
//!
//! CONFIG is JSON (the TOML job config of the streaming runtime is not wired here yet), e.g.
//! `{"model": "m.gguf", "spider": "data/spider", "split": "train", "limit": 200, "out": "runs/sft",
//!   "epochs": 1, "batch_size": 4, "trainer": {"schedule": {"peak_lr": 2e-4, "warmup_steps": 5,
//!   "total_steps": 50, "decay": "cosine"}, "grad_accum": 1, "max_grad_norm": 1.0},
//!   "lora": {"rank": 8, "alpha": 16, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]}}`.

use std::path::PathBuf;

use anyhow::Context;
use candle_core::Device;
use candle_nn::VarMap;
use exspin::model::chat::ChatTemplate;
use exspin::model::logprob::{Pair, response_logprobs};
use exspin::model::lora::{self, LoraConfig};
use exspin::model::{checkpoint, load, tokenizer};
use exspin::train::{Trainer, TrainerConfig, loss, params_of};
use serde::Deserialize;

#[derive(clap::Args, Debug)]
pub struct SftArgs {
    /// The run's JSON config (see `exspin sft --help` and actors/src/cmd/sft.rs).
    pub config: PathBuf,
    #[command(flatten)]
    pub threads: super::compute::ThreadsArgs,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SftConfig {
    model: PathBuf,
    /// The dataset: exactly one of spider (a Spider-layout folder) and jsonl (our JSONL format,
    /// databases under db_dir or database/ beside the file).
    spider: Option<PathBuf>,
    jsonl: Option<PathBuf>,
    db_dir: Option<PathBuf>,
    /// The prompt: ddl (CREATE TABLE from tables.json; the default), plain or integrated (the
    /// schema module's prompt builder, as `exspin generate --schema`).
    #[serde(default = "ddl")]
    schema: String,
    /// Cache folder of the schema module (plain / integrated prompts).
    cache: Option<PathBuf>,
    #[serde(default = "train_split")]
    split: String,
    limit: Option<usize>,
    out: PathBuf,
    #[serde(default = "one")]
    epochs: usize,
    #[serde(default = "four")]
    batch_size: usize,
    template: Option<String>,
    trainer: TrainerConfig,
    lora: Option<LoraConfig>,
}

fn ddl() -> String {
    "ddl".into()
}
fn train_split() -> String {
    "train".into()
}
fn one() -> usize {
    1
}
fn four() -> usize {
    4
}

pub fn run(args: SftArgs) -> anyhow::Result<()> {
    args.threads.apply()?;
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let cfg: SftConfig = serde_json::from_str(&text)
        .with_context(|| format!("{}: invalid sft config", args.config.display()))?;
    anyhow::ensure!(
        cfg.spider.is_some() != cfg.jsonl.is_some(),
        "{}: give exactly one of \"spider\" and \"jsonl\"",
        args.config.display()
    );
    let dataset_args = crate::cli::DatasetArgs {
        spider: cfg.spider.clone(),
        bird: None,
        jsonl: cfg.jsonl.clone(),
        db_dir: cfg.db_dir.clone(),
        split: cfg.split.clone(),
        limit: cfg.limit,
        stratified: None,
    };
    let data = super::dataset::load(&dataset_args)?;
    let schema_args = crate::cli::SchemaArgs {
        cache: cfg
            .cache
            .clone()
            .unwrap_or_else(|| PathBuf::from(".cache/exspin")),
        scorer: "auto".into(),
        k1: 4,
        k2: 10,
        seed: 0,
        ranked_padding: false,
        value_threshold: 0.9,
        full_schema: false,
        tokenizer: None,
        budget: None,
        no_values: false,
    };
    let prompter = super::generate::Prompter::new(&cfg.schema, &dataset_args, &data, &schema_args)?;
    let mut lm = load::load(&cfg.model, &Device::Cpu)
        .with_context(|| format!("loading the model {}", cfg.model.display()))?;
    let template = match &cfg.template {
        Some(t) => t.parse::<ChatTemplate>().map_err(anyhow::Error::msg)?,
        None => lm.chat.clone(),
    };
    let mut pairs = Vec::with_capacity(data.examples.len());
    for ex in &data.examples {
        let prompt = super::ask::chat_prompt(&template, &prompter.schema_prompt(ex)?);
        let answer = format!("{}{}", ex.gold_sql.trim(), template.end_of_turn());
        pairs.push(Pair {
            prompt: tokenizer::encode(&lm.tokenizer, &prompt)?,
            response: tokenizer::encode(&lm.tokenizer, &answer)?,
        });
    }
    let adapters = VarMap::new();
    let params = match &cfg.lora {
        Some(l) => {
            let n = lora::attach(&mut lm.model, l, &adapters)?;
            eprintln!("LoRA on {n} modules (rank {}, alpha {})", l.rank, l.alpha);
            lm.model.set_training(true);
            params_of(&adapters)
        }
        None => params_of(&lm.varmap),
    };
    let mut trainer = Trainer::new(params, cfg.trainer.clone())?;
    let started = std::time::Instant::now();
    for epoch in 0..cfg.epochs {
        for batch in pairs.chunks(cfg.batch_size.max(1)) {
            let lp = response_logprobs(&lm.model, batch, lm.special.pad)?;
            let out = loss::sft_loss(&lp)?;
            if let Some(st) = trainer.backward(&out.loss)? {
                eprintln!(
                    "epoch {epoch} step {} loss {:.4} lr {:.2e} grad-norm {:.3} ({:.1} s)",
                    st.step,
                    out.metrics.loss,
                    st.lr,
                    st.grad_norm,
                    started.elapsed().as_secs_f64()
                );
            }
        }
    }
    lm.model.set_training(false);
    let base = cfg.model.display().to_string();
    checkpoint::write_atomically(&cfg.out, |dir| {
        checkpoint::write_hf_files(dir, &lm.model, &lm.tokenizer, &lm.special, &template, true)?;
        if let Some(l) = &cfg.lora {
            let ad = dir.join("adapter");
            std::fs::create_dir_all(&ad).map_err(|e| exspin::model::ModelError::Io {
                path: ad.clone(),
                source: e,
            })?;
            checkpoint::write_adapter_files(&ad, &mut lm.model, l, &base)?;
        }
        trainer.save_state(dir)
    })?;
    eprintln!("wrote {}", cfg.out.display());
    Ok(())
}
