//! The learner θt+1: the loss of the run's mode on each batch of pairs, AdamW with clipping and a
//! warmup schedule, full fine-tuning or LoRA. `publish` writes the weights as the next version;
//! the state (trainable weights, optimizer moments, step, version) goes into checkpoints.

use std::path::{Path, PathBuf};

use anyhow::Context;
use candle_core::Tensor;
use candle_nn::VarMap;
use exspin::model::checkpoint::save_safetensors;
use exspin::model::logprob::{Pair as TokenPair, response_logprobs};
use exspin::model::recompute::backward_checkpointed;
use exspin::train::loss::{self, LossOutput, PairLogprobs};
use exspin::train::pair_grads::{PairLayout, pair_gradients};
use exspin::train::prompt_groups::PairTokens;
use exspin::train::{Optimizer, params_of};
use serde::{Deserialize, Serialize};

use super::{Lm, adapter_dir, weights_dir};
use crate::config::Mode;
use crate::protocol::seams::{Learner, Pair, SeamResult, StepMetrics, WeightsHandle};

pub struct RealLearner {
    pub lm: Lm,
    /// LoRA adapters when the config asks for them (then only they train).
    pub adapters: Option<VarMap>,
    pub opt: Optimizer,
    pub mode: Mode,
    pub lambda: f64,
    pub run_dir: PathBuf,
    pub version: u64,
    /// Recompute each layer's activations in the backward (`model.activation_checkpointing`).
    pub activation_checkpointing: bool,
    /// Run each prompt once for its gold and negatives (`model.shared_prompt_pairs`).
    pub shared_prompt_pairs: bool,
    /// The adapters' settings (`model.lora`): each version is also published as its adapter
    /// alone ([`adapter_dir`]), what a fleet worker copies instead of the merged weights.
    pub lora: Option<exspin::model::lora::LoraConfig>,
}

#[derive(Debug, Serialize, Deserialize)]
struct LearnerState {
    version: u64,
    /// The model's forward passes so far: LoRA dropout masks are keyed by it, so a resumed
    /// learner drops the same units an uninterrupted one would.
    #[serde(default)]
    forward_passes: u64,
}

const WEIGHTS: &str = "learner.safetensors";
const STATE: &str = "learner.json";

impl RealLearner {
    fn trainable(&self) -> &VarMap {
        self.adapters.as_ref().unwrap_or(&self.lm.varmap)
    }

    fn params(&self) -> Vec<candle_core::Var> {
        params_of(self.trainable())
            .into_iter()
            .map(|(_, v)| v)
            .collect()
    }

    fn rows(&self, pairs: &[Pair], rejected: bool) -> anyhow::Result<Vec<TokenPair>> {
        pairs
            .iter()
            .map(|p| {
                let answer = if rejected {
                    p.rejected.as_deref().with_context(|| {
                        format!("pair {} has no rejected answer in a pair mode", p.id)
                    })?
                } else {
                    &p.chosen
                };
                Ok(TokenPair {
                    prompt: self.lm.prompt_ids(&p.prompt)?,
                    response: self.lm.answer_ids(answer)?,
                })
            })
            .collect()
    }
}

impl Learner for RealLearner {
    fn train_step(&mut self, pairs: &[Pair]) -> SeamResult<StepMetrics> {
        anyhow::ensure!(!pairs.is_empty(), "an empty batch");
        super::trace_memory("train step begins");
        let n = pairs.len();
        let chosen = self.rows(pairs, false)?;
        let count = |rows: &[TokenPair]| -> u64 {
            rows.iter()
                .map(|r| (r.prompt.len() + r.response.len()) as u64)
                .sum()
        };
        let mut tokens = count(&chosen);
        let mode = self.mode;
        let lambda = self.lambda;
        let rc: Vec<f32> = pairs.iter().map(|p| p.ref_logp_chosen).collect();
        let rr: Vec<f32> = pairs
            .iter()
            .map(|p| p.ref_logp_rejected.unwrap_or(0.0))
            .collect();
        // The mode's pair loss from the policy's chosen and rejected log-probs.
        let pair_loss = |pc: &Tensor, pr: &Tensor| -> exspin::model::Result<LossOutput> {
            let lps = PairLogprobs {
                policy_chosen: pc,
                policy_rejected: pr,
                ref_chosen: &rc,
                ref_rejected: &rr,
            };
            match mode {
                Mode::Dpo => loss::dpo_loss(lambda, lps),
                _ => loss::spin_loss(lambda, lps),
            }
        };
        let pad = self.lm.special.pad;
        let out = if mode == Mode::Sft {
            if self.activation_checkpointing {
                let params = self.params();
                let scale = self.opt.loss_scale();
                let (out, grads) =
                    backward_checkpointed(&self.lm.model, &chosen, pad, &params, |lp| {
                        let out = loss::sft_loss(lp)?;
                        Ok(((&out.loss * scale)?, out))
                    })?;
                self.opt.accumulate(&grads)?;
                out
            } else {
                let out = loss::sft_loss(&response_logprobs(&self.lm.model, &chosen, pad)?)?;
                self.opt.backward(&out.loss)?;
                out
            }
        } else {
            let rejected = self.rows(pairs, true)?;
            tokens += count(&rejected);
            let triples: Vec<PairTokens> = chosen
                .into_iter()
                .zip(rejected)
                .map(|(c, r)| PairTokens {
                    prompt: c.prompt,
                    chosen: c.response,
                    rejected: r.response,
                })
                .collect();
            let layout = if self.shared_prompt_pairs {
                PairLayout::SharedPrompt
            } else {
                PairLayout::PerPair
            };
            let (out, grads) = pair_gradients(
                &self.lm.model,
                pad,
                &triples,
                layout,
                self.activation_checkpointing,
                &self.params(),
                self.opt.loss_scale(),
                pair_loss,
            )?;
            self.opt.accumulate(&grads)?;
            out
        };
        super::trace_memory("train step ends");
        Ok(StepMetrics {
            loss: out.metrics.loss as f64,
            reward_margin: out.metrics.margin as f64,
            pairs: n,
            tokens,
        })
    }

    fn publish(&mut self) -> SeamResult<WeightsHandle> {
        let version = self.version + 1;
        let dir = weights_dir(&self.run_dir, version);
        // The adapter first: a published version always has its adapter beside it.
        if let Some(cfg) = &self.lora {
            let base = weights_dir(&self.run_dir, 0).display().to_string();
            exspin::model::checkpoint::save_adapter(
                &adapter_dir(&self.run_dir, version),
                &mut self.lm.model,
                cfg,
                &base,
            )?;
        }
        self.lm.save(&dir)?;
        self.version = version;
        Ok(WeightsHandle {
            version,
            path: Some(dir),
        })
    }

    fn save_state(&self, dir: &Path) -> SeamResult<()> {
        let tensors: Vec<(String, Tensor)> = params_of(self.trainable())
            .into_iter()
            .map(|(name, var)| (name, var.as_tensor().clone()))
            .collect();
        save_safetensors(&dir.join(WEIGHTS), tensors)?;
        self.opt.save_state(dir)?;
        let path = dir.join(STATE);
        std::fs::write(
            &path,
            serde_json::to_vec(&LearnerState {
                version: self.version,
                forward_passes: self
                    .lm
                    .model
                    .forward_passes()
                    .load(std::sync::atomic::Ordering::Relaxed),
            })?,
        )
        .with_context(|| format!("writing {}", path.display()))
    }

    fn restore_state(&mut self, dir: &Path) -> SeamResult<()> {
        let path = dir.join(WEIGHTS);
        let saved = candle_core::safetensors::load(&path, self.lm.model.device())
            .with_context(|| format!("{} is missing or corrupt", path.display()))?;
        for (name, var) in params_of(self.trainable()) {
            let t = saved.get(&name).with_context(|| {
                format!(
                    "{} lacks the weight {name}: it was written by another model config",
                    path.display()
                )
            })?;
            anyhow::ensure!(
                t.dims() == var.dims(),
                "{}: {name} has shape {:?}, the model {:?}",
                path.display(),
                t.dims(),
                var.dims()
            );
            var.set(t)?;
        }
        self.opt.load_state(dir)?;
        let path = dir.join(STATE);
        let state: LearnerState = serde_json::from_slice(
            &std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("{} is corrupt", path.display()))?;
        self.version = state.version;
        self.lm
            .model
            .forward_passes()
            .store(state.forward_passes, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}
