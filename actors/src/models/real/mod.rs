//! The real model behind the seams (`model.kind = "tiny" | "random" | "pretrained"`): the candle decoder of
//! `src/model` and the losses and AdamW of `src/train`, wrapped thinly.
//!
//! Weights travel between the three seams through the run folder: the trainer publishes version
//! t as a Hugging Face folder `RUN/weights/v{t}` (written atomically, LoRA merged), and the
//! opponent and the dev evaluator load that folder. Version 0 is the model after the SFT phase
//! (`setup.rs`). A resumed run finds every published version where it was, so nothing but a path
//! (or, for older versions, just the number) has to be checkpointed.
//!
//! * [`setup`] — the initial model (tiny from scratch, or pretrained), the SFT phase, the seams.
//! * [`generator`] — the opponent θt: sampled SQL with its and the gold's log-probs.
//! * [`learner`] — the learner θt+1: loss by mode, AdamW, publish, state.
//! * [`evaluator`] — dev execution accuracy of a version (greedy).

pub mod evaluator;
pub mod generator;
pub mod learner;
pub mod reuse;
pub mod setup;

use std::path::{Path, PathBuf};

use anyhow::Context;
use candle_nn::VarMap;
use exspin::model::chat::ChatTemplate;
use exspin::model::load::{self, SpecialTokens};
use exspin::model::{Model, checkpoint};
use tokenizers::Tokenizer;

use crate::models::compute::Compute;

/// The folder of published version `v`.
pub fn weights_dir(run_dir: &Path, version: u64) -> PathBuf {
    run_dir.join("weights").join(format!("v{version}"))
}

/// A LoRA run's version `version` as its adapter alone (PEFT layout, base: version 0).
pub fn adapter_dir(run_dir: &Path, version: u64) -> PathBuf {
    run_dir.join("weights").join(format!("v{version}-adapter"))
}

/// A model with what it takes to talk to it.
pub struct Lm {
    pub model: Model,
    /// The base weights as Vars (what full fine-tuning trains).
    pub varmap: VarMap,
    pub tokenizer: Tokenizer,
    pub special: SpecialTokens,
    pub chat: ChatTemplate,
}

impl Lm {
    /// Loads a published version (or any Hugging Face folder / GGUF file). The template is the
    /// run's, not re-detected from the folder, so every version is prompted the same way. The
    /// weights go to the run's device in its dtype (`model.device`, `model.dtype`).
    pub fn load(path: &Path, chat: &ChatTemplate, compute: &Compute) -> anyhow::Result<Lm> {
        let lm = load::load_as(path, compute.dtype, &compute.device)
            .with_context(|| format!("loading the model {}", path.display()))?;
        Ok(Lm {
            model: lm.model,
            varmap: lm.varmap,
            tokenizer: lm.tokenizer,
            special: lm.special,
            chat: chat.clone(),
        })
    }

    /// Version 0 at `base` with the PEFT adapter at `adapter` merged in: what the merged
    /// version folder holds, from the adapter alone (a fleet worker copies only that).
    pub fn load_adapted(
        base: &Path,
        adapter: &Path,
        chat: &ChatTemplate,
        compute: &Compute,
    ) -> anyhow::Result<Lm> {
        let mut lm = Lm::load(base, chat, compute)?;
        let varmap = VarMap::new();
        exspin::model::lora::load_adapter(adapter, &mut lm.model, &varmap)
            .with_context(|| format!("loading the adapter {}", adapter.display()))?;
        lm.model.merge_adapters()?;
        Ok(lm)
    }

    /// Writes a Hugging Face folder atomically (adapters merged).
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        checkpoint::save_hf(
            dir,
            &self.model,
            &self.tokenizer,
            &self.special,
            &self.chat,
            true,
        )
        .with_context(|| format!("writing the weights {}", dir.display()))
    }

    pub fn prompt_ids(&self, schema_prompt: &str) -> anyhow::Result<Vec<u32>> {
        Ok(exspin::prompt::prompt_ids(
            &self.tokenizer,
            &self.chat,
            schema_prompt,
        )?)
    }

    /// The tokens of an answer as training and scoring see it: the query, then the end of turn
    /// (so the model learns to stop, and every score includes stopping).
    pub fn answer_ids(&self, sql: &str) -> anyhow::Result<Vec<u32>> {
        Ok(exspin::prompt::answer_ids(
            &self.tokenizer,
            &self.chat,
            sql,
        )?)
    }

    /// Σ log p(response | prompt) of each row, `chunk` rows per forward pass, as plain numbers
    /// (the fused log-prob op of `exspin-kernels`, the same path the trainer differentiates):
    /// every row runs its whole prompt; the reference the tests hold the grouped scoring to.
    #[cfg(test)]
    pub fn score(
        &self,
        rows: &[exspin::model::logprob::Pair],
        chunk: usize,
    ) -> anyhow::Result<Vec<f32>> {
        use exspin::model::logprob::response_logprobs;
        // Forward only: on the detached view, so no activations are kept for a backward.
        let model = self.model.detached();
        let mut out = Vec::with_capacity(rows.len());
        for part in rows.chunks(chunk.max(1)) {
            let lp = response_logprobs(&model, part, self.special.pad)?;
            out.extend(lp.sum.detach().to_vec1::<f32>()?);
        }
        Ok(out)
    }
}

/// Live heap bytes at a point of the model-heavy seams (`EXSPIN_LOG=exspin_actors::models::real=debug`):
/// where a run's memory goes, from the counting allocator `main` installs.
pub fn trace_memory(at: &str) {
    tracing::debug!(
        live_mb = exspin_kernels::alloc::current_bytes() / (1 << 20),
        thread = ?std::thread::current().id(),
        "{at}"
    );
}

/// A seed from a seed and some text (a prompt's samples depend only on its example and round).
pub fn seed_of(seed: u64, text: &str) -> u64 {
    (crate::models::fakes::unit(seed, text) * (1u64 << 53) as f64) as u64
}

/// Tiny random models over one small tokenizer, for the seams' unit tests: `n` different models
/// (another seed each) that share the tokenizer and special tokens.
#[cfg(test)]
pub fn tiny_test_models(n: usize) -> Vec<Lm> {
    use exspin::model::{Config, tokenizer};
    let corpus: Vec<String> = (0..20)
        .map(|_| "-- Question: how many cats? SELECT count(*) FROM cat\n".to_string())
        .collect();
    let tok = tokenizer::train_bpe(corpus.iter(), 300).unwrap();
    let eot = tok.token_to_id("<|endoftext|>").unwrap();
    let special = SpecialTokens {
        eos: vec![eot],
        pad: eot,
        bos: None,
    };
    (0..n)
        .map(|_| {
            let (model, varmap) = load::random(
                &Config::tiny(tok.get_vocab_size(true)),
                &candle_core::Device::Cpu,
            )
            .unwrap();
            Lm {
                model,
                varmap,
                tokenizer: tok.clone(),
                special: special.clone(),
                chat: ChatTemplate::Plain,
            }
        })
        .collect()
}
