//! The learner θt+1: the loss of the run's mode on each batch of pairs, AdamW with clipping and a
//! warmup schedule, full fine-tuning or LoRA. `publish` writes the weights as the next version;
//! the state (trainable weights, optimizer moments, step, version) goes into checkpoints.

use std::path::{Path, PathBuf};

use anyhow::Context;
use candle_core::Tensor;
use candle_nn::VarMap;
use exspin::model::checkpoint::save_safetensors;
use exspin::model::logprob::{Pair as TokenPair, ResponseLogprobs, response_logprobs};
use exspin::model::recompute::backward_checkpointed;
use exspin::train::grpo::{GrpoSettings, grpo_loss};
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
    /// Weight of the gold NLL term on the pair losses (`model.gold_nll_weight`; 0 = none).
    pub gold_nll_weight: f64,
    /// GRPO's clip (mode = "grpo"; the runtime uses no KL term).
    pub grpo: GrpoSettings,
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
        let gold_nll_weight = self.gold_nll_weight;
        let gold_tokens: Vec<usize> = chosen.iter().map(|r| r.response.len()).collect();
        // The mode's pair loss from the policy's chosen and rejected log-probs, with the gold
        // NLL term when the config asks for it.
        let pair_loss = |pc: &Tensor, pr: &Tensor| -> exspin::model::Result<LossOutput> {
            let lps = PairLogprobs {
                policy_chosen: pc,
                policy_rejected: pr,
                ref_chosen: &rc,
                ref_rejected: &rr,
            };
            let out = match mode {
                Mode::Dpo => loss::dpo_loss(lambda, lps)?,
                _ => loss::spin_loss(lambda, lps)?,
            };
            if gold_nll_weight > 0.0 {
                loss::with_gold_nll(out, gold_nll_weight, pc, &gold_tokens)
            } else {
                Ok(out)
            }
        };
        let pad = self.lm.special.pad;
        let out = if matches!(mode, Mode::Sft | Mode::Grpo) {
            // One response per item: gold (SFT), or a generation with its advantage (GRPO).
            let grpo = match mode {
                Mode::Grpo => {
                    let advantages = pairs
                        .iter()
                        .map(|p| {
                            p.advantage.with_context(|| {
                                format!("item {} has no advantage in grpo mode", p.id)
                            })
                        })
                        .collect::<anyhow::Result<Vec<f32>>>()?;
                    Some((rc.clone(), advantages))
                }
                _ => None,
            };
            let settings = self.grpo;
            let response_loss = |lp: &ResponseLogprobs| match &grpo {
                Some((old, advantages)) => grpo_loss(lp, old, None, advantages, &settings),
                None => loss::sft_loss(lp),
            };
            if self.activation_checkpointing {
                let params = self.params();
                let scale = self.opt.loss_scale();
                let (out, grads) =
                    backward_checkpointed(&self.lm.model, &chosen, pad, &params, |lp| {
                        let out = response_loss(lp)?;
                        Ok(((&out.loss * scale)?, out))
                    })?;
                self.opt.accumulate(&grads)?;
                out
            } else {
                let out = response_loss(&response_logprobs(&self.lm.model, &chosen, pad)?)?;
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
            chosen_reward: out.metrics.chosen_reward as f64,
            gold_nll: (gold_nll_weight > 0.0 && !matches!(mode, Mode::Sft | Mode::Grpo))
                .then_some(out.metrics.gold_nll as f64),
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

#[cfg(test)]
mod tests {
    use exspin::model::logprob::Pair as TokenPair;
    use exspin::train::{Decay, LrSchedule, OptimizerConfig};

    use super::*;

    fn learner(lm: Lm, mode: Mode) -> RealLearner {
        let params = params_of(&lm.varmap);
        let opt = Optimizer::new(
            params,
            OptimizerConfig {
                optim: Default::default(),
                schedule: LrSchedule {
                    peak_lr: 1e-3,
                    warmup_steps: 0,
                    total_steps: 1,
                    decay: Decay::Constant,
                    min_lr_ratio: 1.0,
                },
                grad_accum: 1,
                max_grad_norm: Some(1.0),
            },
        )
        .unwrap();
        RealLearner {
            lm,
            adapters: None,
            opt,
            mode,
            lambda: 0.1,
            gold_nll_weight: 0.0,
            grpo: GrpoSettings::default(),
            run_dir: PathBuf::from("unused"),
            version: 0,
            activation_checkpointing: false,
            shared_prompt_pairs: true,
            lora: None,
        }
    }

    fn item(id: &str, sql: &str, old: f32, advantage: f32) -> Pair {
        Pair {
            id: id.into(),
            example_id: "e".into(),
            prompt: "-- Question: how many cats?".into(),
            chosen: sql.into(),
            rejected: None,
            version: 0,
            ref_logp_chosen: old,
            ref_logp_rejected: None,
            ref_version: 0,
            advantage: Some(advantage),
        }
    }

    /// GRPO through the learner: at the generation-time policy the ratio is 1, so the loss is
    /// −mean(A) = 0 for a normalized group; the steps then raise the rewarded generation's
    /// log-prob and lower the other's. With activation checkpointing, the same first loss.
    #[test]
    fn grpo_steps_move_each_generation_the_way_its_advantage_says() {
        for checkpointing in [false, true] {
            let lm = super::super::tiny_test_models(1).pop().unwrap();
            let score = |lm: &Lm, sql: &str| {
                let row = TokenPair {
                    prompt: lm.prompt_ids("-- Question: how many cats?").unwrap(),
                    response: lm.answer_ids(sql).unwrap(),
                };
                lm.score(&[row], 4).unwrap()[0]
            };
            // Answers without shared tokens, so the two updates do not cancel on a tiny model.
            let (good, bad) = ("SELECT count(*) FROM cat", "how many?");
            let (good0, bad0) = (score(&lm, good), score(&lm, bad));
            let mut l = learner(lm, Mode::Grpo);
            l.activation_checkpointing = checkpointing;
            let items = [
                item("e#s0", good, good0, 1.0),
                item("e#s1", bad, bad0, -1.0),
            ];
            let first = l.train_step(&items).unwrap();
            assert!(
                first.loss.abs() < 1e-5,
                "ratio 1, advantages sum to 0: {first:?}"
            );
            assert_eq!(first.pairs, 2);
            for _ in 0..2 {
                l.train_step(&items).unwrap();
            }
            let (good1, bad1) = (score(&l.lm, good), score(&l.lm, bad));
            assert!(
                good1 > good0,
                "{checkpointing}: rewarded {good0} -> {good1}"
            );
            assert!(bad1 < bad0, "{checkpointing}: penalized {bad0} -> {bad1}");
        }
    }

    /// An ExSPIN step at the reference (θ = θt: the pair loss is ln 2, every reward 0) reports
    /// the pair loss alone without the gold NLL term, and the pair loss plus the weighted
    /// per-token NLL of the gold with it, in either backward.
    #[test]
    fn the_gold_nll_term_adds_the_golds_weighted_per_token_nll_to_the_pair_loss() {
        let prompt = "-- Question: how many cats?";
        let (gold, wrong) = ("SELECT count(*) FROM cat", "SELECT name FROM dog");
        for checkpointing in [false, true] {
            for weight in [0.0, 0.5] {
                let lm = super::super::tiny_test_models(1).pop().unwrap();
                let row = |sql: &str| TokenPair {
                    prompt: lm.prompt_ids(prompt).unwrap(),
                    response: lm.answer_ids(sql).unwrap(),
                };
                let gold_logp = lm.score(&[row(gold)], 4).unwrap()[0];
                let wrong_logp = lm.score(&[row(wrong)], 4).unwrap()[0];
                let gold_len = lm.answer_ids(gold).unwrap().len() as f64;
                let mut l = learner(lm, Mode::Exspin);
                l.activation_checkpointing = checkpointing;
                l.gold_nll_weight = weight;
                let pair = Pair {
                    rejected: Some(wrong.into()),
                    ref_logp_rejected: Some(wrong_logp),
                    advantage: None,
                    ..item("e#s0", gold, gold_logp, 0.0)
                };
                let m = l.train_step(&[pair]).unwrap();
                let nll = -f64::from(gold_logp) / gold_len;
                let want = std::f64::consts::LN_2 + weight * nll;
                assert!(
                    (m.loss - want).abs() < 1e-4,
                    "{checkpointing} {weight}: {m:?} vs {want}"
                );
                assert!(
                    m.chosen_reward.abs() < 1e-4 && m.reward_margin.abs() < 1e-4,
                    "{m:?}"
                );
                match m.gold_nll {
                    Some(got) => {
                        assert!(weight > 0.0, "{m:?}");
                        assert!((got - nll).abs() < 1e-4, "{got} vs {nll}");
                    }
                    None => assert_eq!(weight, 0.0, "{m:?}"),
                }
            }
        }
    }

    #[test]
    fn grpo_refuses_an_item_without_an_advantage() {
        let lm = super::super::tiny_test_models(1).pop().unwrap();
        let mut l = learner(lm, Mode::Grpo);
        let mut it = item("e#s0", "SELECT 1", -3.0, 1.0);
        it.advantage = None;
        let err = l.train_step(&[it]).unwrap_err().to_string();
        assert!(err.contains("no advantage"), "{err}");
    }
}
