//! The one SFT loop (`exspin sft` and the run's SFT phase before the self-play rounds): NLL of
//! the gold answer given the prompt, batches drawn from a seeded shuffle epoch after epoch, AdamW
//! with linear warmup and cosine decay to a tenth of the peak, gradient clipping. Full
//! fine-tuning trains the base VarMap; with a LoRA config, adapters are attached to the model and
//! only they train (the caller writes them out, or merges them when it saves the model).

use candle_nn::VarMap;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::{Decay, LrSchedule, Optimizer, OptimizerConfig, loss, params_of};
use crate::model::logprob::{Pair, response_logprobs};
use crate::model::lora::{self, LoraConfig};
use crate::model::{Model, Result};

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

/// What the loop did. `optimizer` (with its moments, for `save_state`) is None when no
/// step ran (no steps or no pairs): the model is then untouched.
pub struct SftOutcome {
    pub steps: usize,
    pub first_loss: Option<f32>,
    /// Mean loss of the last 10 steps.
    pub last_loss: Option<f32>,
    pub optimizer: Option<Optimizer>,
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
) -> Result<SftOutcome> {
    let batch = settings.batch_size.max(1);
    let steps = settings.total_steps(pairs.len());
    let mut outcome = SftOutcome {
        steps: 0,
        first_loss: None,
        last_loss: None,
        optimizer: None,
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
        params,
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
    for step in 0..steps {
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
