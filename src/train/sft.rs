//! The one SFT loop (`exspin sft` and the run's SFT phase before the self-play rounds): NLL of
//! the gold answer given the prompt, batches drawn from a seeded shuffle epoch after epoch, AdamW
//! with linear warmup and cosine decay to a tenth of the peak, gradient clipping. Full
//! fine-tuning trains the base VarMap; with a LoRA config, adapters are attached to the model and
//! only they train (the caller writes them out, or merges them when it saves the model).
//!
//! Early stopping ([`Validation`]): every `every` steps (and before the first and after the
//! last) the caller scores the model on held-out data; the loop keeps a copy of the trainable
//! weights at the best score, stops after `patience` scores without a new best, and leaves the
//! model at its best copy. So the model it returns is the best validated one, not the last.
//!
//! Interruptible: `stop` is asked between steps; when it says yes the loop writes an SFT
//! checkpoint (the trainable weights, the optimizer state, the step, the shuffled order still to
//! come, the shuffle's RNG position, the model's forward-pass counter that LoRA dropout is keyed
//! by, the losses so far) and returns. Started again with that folder, it continues exactly where
//! it stopped: the same batches, the same updates, the same final model.

use std::path::Path;
use std::sync::atomic::Ordering;

use candle_core::Tensor;
use candle_nn::VarMap;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{Decay, LrSchedule, Optimizer, OptimizerConfig, loss, params_of};
use crate::model::checkpoint::save_safetensors;
use crate::model::logprob::{Pair, response_logprobs};
use crate::model::lora::{self, LoraConfig};
use crate::model::{Model, ModelError, Result};

/// How long and how fast SFT trains.
#[derive(Debug, Clone, PartialEq)]
pub struct SftSettings {
    /// Optimizer steps, used when `epochs` is 0.
    pub steps: usize,
    /// Passes over the pairs; when > 0 it sets the steps (epochs × batches per epoch).
    pub epochs: usize,
    /// Pairs per step.
    pub batch_size: usize,
    pub peak_lr: f64,
    pub warmup_steps: usize,
    pub max_grad_norm: f64,
    /// Seed of the shuffle (same seed and pairs: same batches).
    pub seed: u64,
}

impl SftSettings {
    /// The optimizer steps over `pairs` pairs.
    pub fn total_steps(&self, pairs: usize) -> usize {
        if self.epochs > 0 {
            self.epochs * pairs.div_ceil(self.batch_size.max(1))
        } else {
            self.steps
        }
    }
}

/// One step, for the caller's log.
#[derive(Debug, Clone, Copy)]
pub struct SftStep {
    /// 1-based.
    pub step: usize,
    pub steps: usize,
    pub loss: f32,
    pub lr: f64,
}

/// What the loop did. `optimizer` (with its moments, for `save_state`) is None when no step ran
/// (no steps or no pairs): the model is then untouched. `stopped_at` is the step it stopped
/// after when `stop` asked, with its checkpoint written; None when it ran to the end.
pub struct SftOutcome {
    pub steps: usize,
    /// Every validation in order (empty without [`Validation`]).
    pub validations: Vec<Scored>,
    /// The steps done at the best validation, whose weights the model now holds.
    pub best_step: Option<usize>,
    /// Whether patience ran out before the planned steps.
    pub early_stopped: bool,
    pub first_loss: Option<f32>,
    /// Mean loss of the last 10 steps.
    pub last_loss: Option<f32>,
    pub optimizer: Option<Optimizer>,
    pub stopped_at: Option<usize>,
}

/// Where an interrupted SFT goes on from (`sft_state.json` of an SFT checkpoint).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Cursor {
    /// Steps done.
    step: usize,
    steps: usize,
    /// Pair indices still to come, in order (the rest of the current shuffled epoch).
    order: Vec<usize>,
    /// The shuffle RNG's position (its seed comes from the settings).
    rng_word_pos: u128,
    /// The model's forward passes so far (LoRA dropout masks are keyed by it).
    forward_passes: u64,
    first_loss: Option<f32>,
    recent: Vec<f32>,
    /// The validations so far and the best one's index (its weights: [`BEST`]).
    #[serde(default)]
    validations: Vec<Scored>,
    #[serde(default)]
    best: Option<usize>,
}

const CURSOR: &str = "sft_state.json";
const TRAINABLE: &str = "trainable.safetensors";
const BEST: &str = "best.safetensors";

/// Named copies of the trainable weights.
type Weights = Vec<(String, Tensor)>;

/// A validation score: higher is better, compared in order, so the second breaks ties of the
/// first (execution accuracy, then the negated gold loss: a small model's accuracy can sit at
/// 0 for hundreds of steps while it learns).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
pub struct Score(pub f64, pub f64);

/// One validation: the steps done and the score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    pub step: usize,
    pub score: Score,
}

/// Early stopping on a validation score.
pub struct Validation<'a> {
    /// Steps between scores.
    pub every: usize,
    /// Scores in a row without a new best before the loop stops.
    pub patience: usize,
    /// The model's score now, e.g. execution accuracy on a split held out from train.
    pub score: &'a mut dyn FnMut(&Model) -> Result<Score>,
}

/// The trainable weights as they are now (deep copies: later updates do not reach them).
fn snapshot(params: &[(String, candle_core::Var)]) -> Result<Weights> {
    params
        .iter()
        .map(|(name, var)| Ok((name.clone(), var.as_tensor().copy()?)))
        .collect()
}

/// Puts a snapshot back into the trainable Vars.
fn restore(params: &[(String, candle_core::Var)], saved: &[(String, Tensor)]) -> Result<()> {
    for ((_, var), (_, t)) in params.iter().zip(saved) {
        var.set(t)?;
    }
    Ok(())
}

/// Whether a validation history says stop: `patience` scores since the best one.
fn patience_spent(validations: &[Scored], best: Option<usize>, patience: usize) -> bool {
    best.is_some_and(|b| validations.len() - 1 - b >= patience.max(1))
}

/// Whether `dir` holds an SFT checkpoint.
pub fn is_checkpoint(dir: &Path) -> bool {
    dir.join(CURSOR).is_file()
}

/// Writes an SFT checkpoint into `dir` (a fresh folder; the caller renames it into place).
fn save_checkpoint(
    dir: &Path,
    params: &[(String, candle_core::Var)],
    best: Option<&[(String, Tensor)]>,
    opt: &Optimizer,
    cursor: &Cursor,
) -> Result<()> {
    let tensors: Vec<(String, Tensor)> = params
        .iter()
        .map(|(name, var)| (name.clone(), var.as_tensor().clone()))
        .collect();
    save_safetensors(&dir.join(TRAINABLE), tensors)?;
    if let Some(best) = best {
        save_safetensors(&dir.join(BEST), best.to_vec())?;
    }
    opt.save_state(dir)?;
    let p = dir.join(CURSOR);
    std::fs::write(&p, serde_json::to_vec(cursor).expect("json")).map_err(|e| ModelError::io(&p, e))
}

/// Puts a checkpoint back into the trainable Vars and the optimizer; returns its cursor and
/// the best validated weights when it has them.
fn load_checkpoint(
    dir: &Path,
    params: &[(String, candle_core::Var)],
    opt: &mut Optimizer,
    steps: usize,
) -> Result<(Cursor, Option<Weights>)> {
    let p = dir.join(CURSOR);
    let text = std::fs::read(&p).map_err(|e| ModelError::io(&p, e))?;
    let cursor: Cursor = serde_json::from_slice(&text)
        .map_err(|e| ModelError::invalid(&p, format!("not an SFT checkpoint state: {e}")))?;
    if cursor.steps != steps {
        return Err(ModelError::invalid(
            &p,
            format!(
                "it is a checkpoint of {} SFT steps, and these settings make {steps}: the data \
                 or the [sft] settings changed; restore them or delete the folder to start SFT \
                 again",
                cursor.steps
            ),
        ));
    }
    let device = params
        .first()
        .map(|(_, v)| v.device().clone())
        .unwrap_or(candle_core::Device::Cpu);
    let read = |file: &str| -> Result<Weights> {
        let w = dir.join(file);
        let saved =
            candle_core::safetensors::load(&w, &device).map_err(|e| ModelError::Candle {
                context: w.display().to_string(),
                source: e,
            })?;
        params
            .iter()
            .map(|(name, _)| {
                let t = saved.get(name).ok_or_else(|| ModelError::MissingTensor {
                    path: w.clone(),
                    name: name.clone(),
                })?;
                Ok((name.clone(), t.clone()))
            })
            .collect()
    };
    restore(params, &read(TRAINABLE)?)?;
    let best = match cursor.best {
        Some(_) => Some(read(BEST)?),
        None => None,
    };
    opt.load_state(dir)?;
    Ok((cursor, best))
}

/// Where an interrupted SFT checkpoints and resumes, and when it stops.
pub struct Interrupt<'a> {
    /// Asked between steps: stop now?
    pub stop: &'a dyn Fn() -> bool,
    /// The SFT checkpoint folder (written atomically on a stop; read when present at start).
    pub checkpoint: &'a Path,
}

/// Trains `model` on `pairs`; `on_step` sees every step (the callers log).
pub fn sft(
    model: &mut Model,
    base: &VarMap,
    pad: u32,
    lora_config: Option<&LoraConfig>,
    pairs: &[Pair],
    settings: &SftSettings,
    on_step: &mut dyn FnMut(&SftStep),
    interrupt: Option<&Interrupt<'_>>,
    mut validation: Option<&mut Validation<'_>>,
) -> Result<SftOutcome> {
    let batch = settings.batch_size.max(1);
    let steps = settings.total_steps(pairs.len());
    let mut outcome = SftOutcome {
        steps: 0,
        validations: Vec::new(),
        best_step: None,
        early_stopped: false,
        first_loss: None,
        last_loss: None,
        optimizer: None,
        stopped_at: None,
    };
    if steps == 0 || pairs.is_empty() {
        return Ok(outcome);
    }
    // The adapters' Vars live on in the model's LoRA layers; the map only hands them over.
    let adapters = VarMap::new();
    let params = match lora_config {
        Some(l) => {
            lora::attach(model, l, &adapters)?;
            model.set_training(true);
            params_of(&adapters)
        }
        None => params_of(base),
    };
    let mut opt = Optimizer::new(
        params.clone(),
        OptimizerConfig {
            optim: Default::default(),
            schedule: LrSchedule {
                peak_lr: settings.peak_lr,
                warmup_steps: settings.warmup_steps,
                total_steps: steps,
                decay: Decay::Cosine,
                min_lr_ratio: 0.1,
            },
            grad_accum: 1,
            max_grad_norm: Some(settings.max_grad_norm),
        },
    )?;
    // The constant keeps the run's measured SFT batches (this loop began as its SFT phase).
    let mut rng = ChaCha8Rng::seed_from_u64(settings.seed ^ 0x5f7);
    let mut order: Vec<usize> = Vec::new();
    let mut recent: Vec<f32> = Vec::new();
    let mut start = 0;
    let mut validations: Vec<Scored> = Vec::new();
    let mut best: Option<usize> = None;
    let mut best_weights: Option<Weights> = None;
    if let Some(it) = interrupt.filter(|it| is_checkpoint(it.checkpoint)) {
        let (c, saved_best) = load_checkpoint(it.checkpoint, &params, &mut opt, steps)?;
        rng.set_word_pos(c.rng_word_pos);
        model
            .forward_passes()
            .store(c.forward_passes, Ordering::Relaxed);
        (start, order, recent) = (c.step, c.order, c.recent);
        (validations, best, best_weights) = (c.validations, c.best, saved_best);
        outcome.first_loss = c.first_loss;
    }
    let (every, patience) = validation
        .as_deref()
        .map_or((0, 0), |v| (v.every.max(1), v.patience));
    // Scores the model after `done` steps; keeps its weights when they are the best so far.
    let mut validate = |model: &mut Model,
                        done: usize,
                        validations: &mut Vec<Scored>,
                        best: &mut Option<usize>,
                        best_weights: &mut Option<Weights>|
     -> Result<()> {
        let Some(v) = validation.as_deref_mut() else {
            return Ok(());
        };
        if validations.last().is_some_and(|v| v.step == done) {
            return Ok(());
        }
        model.set_training(false);
        let score = (v.score)(model)?;
        model.set_training(lora_config.is_some());
        validations.push(Scored { step: done, score });
        if best.is_none_or(|b| score > validations[b].score) {
            *best = Some(validations.len() - 1);
            *best_weights = Some(snapshot(&params)?);
        }
        Ok(())
    };
    if start == 0 {
        validate(model, 0, &mut validations, &mut best, &mut best_weights)?;
    }
    let mut end = steps;
    for step in start..steps {
        if every > 0 && patience_spent(&validations, best, patience) {
            end = step;
            outcome.early_stopped = true;
            break;
        }
        if let Some(it) = interrupt.filter(|it| step > start && (it.stop)()) {
            let cursor = Cursor {
                step,
                steps,
                order,
                rng_word_pos: rng.get_word_pos(),
                forward_passes: model.forward_passes().load(Ordering::Relaxed),
                first_loss: outcome.first_loss,
                recent,
                validations,
                best,
            };
            let staged = crate::fsutil::Staged::dir(it.checkpoint)
                .map_err(|e| ModelError::io(it.checkpoint, e))?;
            save_checkpoint(
                staged.path(),
                &params,
                best_weights.as_deref(),
                &opt,
                &cursor,
            )?;
            staged
                .commit()
                .map_err(|e| ModelError::io(it.checkpoint, e))?;
            model.set_training(false);
            outcome.steps = step;
            outcome.stopped_at = Some(step);
            outcome.validations = cursor.validations;
            outcome.optimizer = Some(opt);
            return Ok(outcome);
        }
        if order.len() < batch {
            let mut epoch: Vec<usize> = (0..pairs.len()).collect();
            epoch.shuffle(&mut rng);
            order.extend(epoch);
        }
        let rows: Vec<Pair> = order
            .drain(..batch.min(order.len()))
            .map(|i| pairs[i].clone())
            .collect();
        let lp = response_logprobs(model, &rows, pad)?;
        let out = loss::sft_loss(&lp)?;
        let st = opt.backward(&out.loss)?;
        let l = out.metrics.loss;
        outcome.first_loss.get_or_insert(l);
        recent.push(l);
        if recent.len() > 10 {
            recent.remove(0);
        }
        on_step(&SftStep {
            step: step + 1,
            steps,
            loss: l,
            lr: st.map(|x| x.lr).unwrap_or(0.0),
        });
        if every > 0 && ((step + 1) % every == 0 || step + 1 == steps) {
            validate(
                model,
                step + 1,
                &mut validations,
                &mut best,
                &mut best_weights,
            )?;
        }
    }
    model.set_training(false);
    outcome.steps = end;
    if !recent.is_empty() {
        outcome.last_loss = Some(recent.iter().sum::<f32>() / recent.len() as f32);
    }
    if let (Some(b), Some(weights)) = (best, &best_weights) {
        restore(&params, weights)?;
        outcome.best_step = Some(validations[b].step);
    }
    outcome.validations = validations;
    outcome.optimizer = Some(opt);
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;
    use crate::model::Config;
    use crate::model::load;

    fn settings(steps: usize) -> SftSettings {
        SftSettings {
            steps,
            epochs: 0,
            batch_size: 2,
            peak_lr: 1e-2,
            warmup_steps: 0,
            max_grad_norm: 1.0,
            seed: 5,
        }
    }

    fn pairs() -> Vec<Pair> {
        (0..6u32)
            .map(|i| Pair {
                prompt: vec![1 + i, 2, 3 + i, 4],
                response: vec![10 + i, 11, 12 + (i % 3), 0],
            })
            .collect()
    }

    fn weights(base: &VarMap) -> Vec<(String, Tensor)> {
        snapshot(&params_of(base)).unwrap()
    }

    fn same(a: &[(String, Tensor)], b: &[(String, Tensor)]) -> bool {
        a.iter().zip(b).all(|((n, x), (m, y))| {
            n == m
                && x.flatten_all().unwrap().to_vec1::<f32>().unwrap()
                    == y.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        })
    }

    /// Scores at steps 0, 2, 4, 6, 8: the best is step 4's (a tie on the first part, won on the
    /// second); step 8's equals it, which is no new best, so patience 2 is spent after step 8's
    /// score and the loop stops there, leaving step 4's weights.
    #[test]
    fn early_stopping_keeps_the_best_validated_weights() {
        let (mut model, base) = load::random(&Config::tiny(32), &Device::Cpu).unwrap();
        // Ties of the first part are broken by the second: (0.5, -2) beats (0.5, -3).
        let script = [
            Score(0.1, 0.0),
            Score(0.5, -3.0),
            Score(0.5, -2.0),
            Score(0.3, 0.0),
            Score(0.5, -2.0),
            Score(0.9, 0.0),
        ];
        let mut seen: Vec<Vec<(String, Tensor)>> = Vec::new();
        let base_ref = &base;
        let mut score = |_: &Model| -> Result<Score> {
            seen.push(weights(base_ref));
            Ok(script[seen.len() - 1])
        };
        let mut v = Validation {
            every: 2,
            patience: 2,
            score: &mut score,
        };
        let out = sft(
            &mut model,
            &base,
            0,
            None,
            &pairs(),
            &settings(20),
            &mut |_| {},
            None,
            Some(&mut v),
        )
        .unwrap();
        let steps: Vec<usize> = out.validations.iter().map(|v| v.step).collect();
        assert_eq!(steps, [0, 2, 4, 6, 8]);
        assert_eq!(out.validations[2].score, script[2]);
        assert!(out.early_stopped);
        assert_eq!(out.steps, 8);
        assert_eq!(out.best_step, Some(4));
        assert!(
            same(&weights(&base), &seen[2]),
            "the model holds step 4's weights"
        );
        assert!(!same(&weights(&base), &seen[4]), "not the last ones");
    }

    /// Interrupted between validations and started again, the loop scores, stops and returns the
    /// same as without the interruption: the best weights and the history are in the checkpoint.
    #[test]
    fn early_stopping_survives_an_interruption() {
        let (mut model, base) = load::random(&Config::tiny(32), &Device::Cpu).unwrap();
        let initial = weights(&base);
        let held_out = vec![Pair {
            prompt: vec![7, 2, 9, 4],
            response: vec![13, 11, 12, 0],
        }];
        let run = |model: &mut Model, stop_at: Option<usize>, dir: &Path| {
            let mut nll = |m: &Model| -> Result<Score> {
                let lp = response_logprobs(m, &held_out, 0)?;
                Ok(Score(0.0, lp.sum.sum_all()?.to_scalar::<f32>()? as f64))
            };
            let mut v = Validation {
                every: 3,
                patience: 2,
                score: &mut nll,
            };
            let steps = std::cell::Cell::new(0usize);
            let stop = || stop_at.is_some_and(|s| steps.get() >= s);
            let it = Interrupt {
                stop: &stop,
                checkpoint: &dir.join("ckpt"),
            };
            sft(
                model,
                &base,
                0,
                None,
                &pairs(),
                &settings(30),
                &mut |st| steps.set(st.step),
                Some(&it),
                Some(&mut v),
            )
            .unwrap()
        };
        let tmp = tempfile::tempdir().unwrap();
        let whole = run(&mut model, None, &tmp.path().join("a"));
        let whole_weights = weights(&base);

        restore(&params_of(&base), &initial).unwrap();
        model.forward_passes().store(0, Ordering::Relaxed);
        let dir = tmp.path().join("b");
        let first = run(&mut model, Some(4), &dir);
        assert_eq!(first.stopped_at, Some(4));
        let second = run(&mut model, None, &dir);
        // Scores agree to f32 rounding: a forward pass may sum in another order from one run
        // to the next (threaded matmul), which once moved the first score by one f32 ulp.
        assert_eq!(second.validations.len(), whole.validations.len());
        for (a, b) in second.validations.iter().zip(&whole.validations) {
            assert_eq!(a.step, b.step);
            let close = |x: f64, y: f64| (x - y).abs() <= 1e-6 * x.abs().max(y.abs()).max(1.0);
            assert!(
                close(a.score.0, b.score.0) && close(a.score.1, b.score.1),
                "{a:?} vs {b:?}"
            );
        }
        assert_eq!(second.best_step, whole.best_step);
        assert_eq!(second.steps, whole.steps);
        assert!(same(&weights(&base), &whole_weights));
        assert!(whole.validations.len() >= 3, "{:?}", whole.validations);
    }
}
