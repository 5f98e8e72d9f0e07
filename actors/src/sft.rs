//! Supervised fine-tuning as a job of its own (`exspin sft CONFIG.toml --out DIR`): the same SFT
//! phase `exspin run` does before its rounds (the same data, prompts, initial model, token pairs
//! and loop, from `models::real::setup`), without the dev passes around it, and its result
//! written as a Hugging Face folder (with a PEFT adapter under LoRA) and the optimizer state.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use exspin::data::Example;
use exspin::model::checkpoint;
use exspin::model::logprob::Pair as TokenPair;

use crate::config::{JobConfig, ModelSource};
use crate::logic::prompts::Prompter;
use crate::models::compute::Compute;
use crate::models::real::{Lm, setup};

/// A job config's SFT, prepared: the train prompts, the initial model, the token pairs.
pub struct SftJob {
    config: JobConfig,
    lm: Lm,
    /// The prompt text of each train example (before the template), in the pairs' order.
    prompts: Vec<String>,
    pairs: Vec<TokenPair>,
}

/// What [`SftJob::train_into`] did.
#[derive(Debug, Clone)]
pub struct SftDone {
    pub steps: usize,
    pub first_loss: Option<f32>,
    /// Mean loss of the last 10 steps.
    pub last_loss: Option<f32>,
}

impl SftJob {
    /// Reads the train split of `config` (the synthetic default is generated under `cache`),
    /// builds every prompt (schema caches under `cache`) and the initial model, and tokenizes the
    /// (prompt, gold) pairs, as the run's SFT phase does.
    pub fn prepare(config: JobConfig, cache: &Path) -> anyhow::Result<SftJob> {
        anyhow::ensure!(
            !config.model.is_fake(),
            "model.kind = \"fake\" has nothing to fine-tune; use tiny, random or pretrained"
        );
        // The synthetic dataset is generated once per data section, into the cache.
        let data_key = crate::runtime::sha256_hex(toml::to_string(&config.data)?.as_bytes());
        let work = cache.join(format!("sft-data-{}", &data_key[..16]));
        let train = crate::runtime::load_data(&config, &work)?.train;
        let prompter = Prompter::new(&config.model, &train, cache)?;
        let items: Vec<(&Example, String)> = train
            .evaluable_examples()
            .map(|(_, e)| Ok((e, prompter.prompt(e)?)))
            .collect::<anyhow::Result<_>>()?;
        let m = &config.model;
        let compute = Compute::from_config(m.device, m.dtype, config.sft_seed())?;
        let lm = setup::initial_model(&config, &items, &compute)?;
        let pairs = setup::sft_pairs(&lm, &items)?;
        let prompts = items.into_iter().map(|(_, p)| p).collect();
        Ok(SftJob {
            config,
            lm,
            prompts,
            pairs,
        })
    }

    /// The (prompt, gold answer) token pairs SFT trains on.
    pub fn pairs(&self) -> &[TokenPair] {
        &self.pairs
    }

    /// The token ids the run's seams feed the model for train example `index` (they tokenize the
    /// prompt text a `PromptItem` carries; the pairs went through the same call).
    pub fn seam_prompt_ids(&self, index: usize) -> anyhow::Result<Vec<u32>> {
        self.lm.prompt_ids(&self.prompts[index])
    }

    /// One JSON line `{"prompt": [ids], "response": [ids]}` per pair into `path`.
    pub fn write_pairs(&self, path: &Path) -> anyhow::Result<()> {
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        );
        for p in &self.pairs {
            let row = serde_json::json!({ "prompt": p.prompt, "response": p.response });
            writeln!(f, "{row}")?;
        }
        f.flush()?;
        Ok(())
    }

    /// A line for the log: pairs, template, schema mode.
    pub fn describe(&self) -> String {
        format!(
            "{} train pairs, template {:?}, {} prompt",
            self.pairs.len(),
            self.lm.chat,
            self.config.model.schema
        )
    }

    /// Trains (logging every `sft.log_every` steps) and writes `out` atomically: the Hugging Face
    /// folder (LoRA merged), `out/adapter` (PEFT) under LoRA, and the optimizer state.
    pub fn train_into(mut self, out: &Path) -> anyhow::Result<SftDone> {
        let outcome = setup::train_sft(&self.config, &mut self.lm, &self.pairs, None, None)?;
        let optimizer = outcome.optimizer.with_context(|| {
            format!(
                "no SFT step to run ({} train pairs): set sft.epochs or sft.steps above 0",
                self.pairs.len()
            )
        })?;
        let m = &self.config.model;
        let base = match &m.source {
            ModelSource::Pretrained { path } => path.display().to_string(),
            _ => m.kind().name().to_string(),
        };
        let lm = &mut self.lm;
        checkpoint::write_atomically(out, |dir| {
            checkpoint::write_hf_files(dir, &lm.model, &lm.tokenizer, &lm.special, &lm.chat, true)?;
            if let Some(l) = &m.lora {
                let ad = dir.join("adapter");
                std::fs::create_dir_all(&ad).map_err(|e| exspin::model::ModelError::Io {
                    path: ad.clone(),
                    source: e,
                })?;
                checkpoint::write_adapter_files(&ad, &mut lm.model, l, &base)?;
            }
            optimizer.save_state(dir)
        })?;
        Ok(SftDone {
            steps: outcome.steps,
            first_loss: outcome.first_loss,
            last_loss: outcome.last_loss,
        })
    }
}
