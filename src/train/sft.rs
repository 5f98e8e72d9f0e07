//! The one SFT loop (`exspin sft` and the run's SFT phase before the self-play rounds): NLL of
//! the gold answer given the prompt, batches drawn from a seeded shuffle epoch after epoch, AdamW
//! with linear warmup and cosine decay to a tenth of the peak, gradient clipping. Full
//! fine-tuning trains the base VarMap; with a LoRA config, adapters are attached to the model and
//! only they train (the caller writes them out, or merges them when it saves the model).
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
}

const CURSOR: &str = "sft_state.json";
const TRAINABLE: &str = "trainable.safetensors";

/// Whether `dir` holds an SFT checkpoint.
pub fn is_checkpoint(dir: &Path) -> bool {
    dir.join(CURSOR).is_file()
}

/// Writes an SFT checkpoint into `dir` (a fresh folder; the caller renames it into place).
fn save_checkpoint(
    dir: &Path,
    params: &[(String, candle_core::Var)],
    opt: &Optimizer,
    cursor: &Cursor,
) -> Result<()> {
    let tensors: Vec<(String, Tensor)> = params
        .iter()
        .map(|(name, var)| (name.clone(), var.as_tensor().clone()))
        .collect();
    save_safetensors(&dir.join(TRAINABLE), tensors)?;
    opt.save_state(dir)?;
    let p = dir.join(CURSOR);
    std::fs::write(&p, serde_json::to_vec(cursor).expect("json")).map_err(|e| ModelError::io(&p, e))
}

/// Puts a checkpoint back into the trainable Vars and the optimizer; returns its cursor.
fn load_checkpoint(
    dir: &Path,
    params: &[(String, candle_core::Var)],
    opt: &mut Optimizer,
    steps: usize,
) -> Result<Cursor> {
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
    let w = dir.join(TRAINABLE);
    let device = params
        .first()
        .map(|(_, v)| v.device().clone())
        .unwrap_or(candle_core::Device::Cpu);
    let saved = candle_core::safetensors::load(&w, &device).map_err(|e| ModelError::Candle {
        context: w.display().to_string(),
        source: e,
    })?;
    for (name, var) in params {
        let t = saved.get(name).ok_or_else(|| ModelError::MissingTensor {
            path: w.clone(),
            name: name.clone(),
        })?;
        var.set(t)?;
    }
    opt.load_state(dir)?;
    Ok(cursor)
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
) -> Result<SftOutcome> {
    let batch = settings.batch_size.max(1);
    let steps = settings.total_steps(pairs.len());
    let mut outcome = SftOutcome {
        steps: 0,
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
    if let Some(it) = interrupt.filter(|it| is_checkpoint(it.checkpoint)) {
        let c = load_checkpoint(it.checkpoint, &params, &mut opt, steps)?;
        rng.set_word_pos(c.rng_word_pos);
        model
            .forward_passes()
            .store(c.forward_passes, Ordering::Relaxed);
        (start, order, recent) = (c.step, c.order, c.recent);
        outcome.first_loss = c.first_loss;
    }
    for step in start..steps {
        if let Some(it) = interrupt.filter(|it| step > start && (it.stop)()) {
            let cursor = Cursor {
                step,
                steps,
                order,
                rng_word_pos: rng.get_word_pos(),
                forward_passes: model.forward_passes().load(Ordering::Relaxed),
                first_loss: outcome.first_loss,
                recent,
            };
            let staged = crate::fsutil::Staged::dir(it.checkpoint)
                .map_err(|e| ModelError::io(it.checkpoint, e))?;
            save_checkpoint(staged.path(), &params, &opt, &cursor)?;
            staged
                .commit()
                .map_err(|e| ModelError::io(it.checkpoint, e))?;
            model.set_training(false);
            outcome.steps = step;
            outcome.stopped_at = Some(step);
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
    }
    model.set_training(false);
    outcome.steps = steps;
    outcome.last_loss = Some(recent.iter().sum::<f32>() / recent.len() as f32);
    outcome.optimizer = Some(opt);
    Ok(outcome)
}
