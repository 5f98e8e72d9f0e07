//! Training: losses ([`loss`]; GRPO's, with its execution reward and group advantages, in
//! [`grpo`]), AdamW with clipping and accumulation ([`optim`]), learning-rate
//! schedules ([`lr_schedule`]), and [`Optimizer`], which ties them into "backward each micro-batch,
//! update every N". Full fine-tuning hands the optimizer the model's VarMap; LoRA hands it the
//! adapters' VarMap (the base is frozen), so the same optimizer serves both. (Only the runtime's
//! stage that applies pairs is called "trainer"; the model behind it is the `Learner` seam.)

pub mod grpo;
mod host_adamw;
pub mod loss;
pub mod lr_schedule;
pub mod optim;
pub mod pair_grads;
pub mod prompt_groups;
pub mod sft;

use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::model::{ModelError, Result};
pub use lr_schedule::{Decay, LrSchedule};
pub use optim::{AdamW, AdamWConfig, GradAccumulator, clip_scale, params_of};

/// How the optimizer updates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerConfig {
    #[serde(default)]
    pub optim: AdamWConfig,
    pub schedule: LrSchedule,
    /// Micro-batches per optimizer update (each micro-batch loss is scaled by 1/N).
    #[serde(default = "one")]
    pub grad_accum: usize,
    /// Clip the global gradient norm to this (None: no clipping).
    #[serde(default)]
    pub max_grad_norm: Option<f64>,
}

fn one() -> usize {
    1
}

/// What an optimizer update did.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepStats {
    /// The update's index (0-based).
    pub step: usize,
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
}

/// Saved beside the optimizer moments for resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimizerState {
    pub step: usize,
    pub adam_updates: usize,
}

/// Backward, accumulate, clip, update.
pub struct Optimizer {
    cfg: OptimizerConfig,
    opt: AdamW,
    accum: GradAccumulator,
    step: usize,
}

impl Optimizer {
    pub fn new(params: Vec<(String, Var)>, cfg: OptimizerConfig) -> Result<Self> {
        if params.is_empty() {
            return Err(ModelError::invalid("trainer", "no trainable parameters"));
        }
        if cfg.grad_accum == 0 {
            return Err(ModelError::invalid(
                "trainer",
                "grad_accum must be at least 1",
            ));
        }
        let n = params.len();
        Ok(Optimizer {
            opt: AdamW::new(params, cfg.optim.clone())?,
            accum: GradAccumulator::new(n),
            cfg,
            step: 0,
        })
    }

    /// Optimizer updates done.
    pub fn step(&self) -> usize {
        self.step
    }

    pub fn params(&self) -> &[(String, Var)] {
        self.opt.params()
    }

    /// Backward one micro-batch's loss; after `grad_accum` of them, clip and update. Returns the
    /// update's stats when one happened.
    pub fn backward(&mut self, loss: &Tensor) -> Result<Option<StepStats>> {
        let scaled = (loss * self.loss_scale())?;
        self.accumulate(&scaled.backward()?)
    }

    /// What a loss is multiplied by before its gradients go to [`Optimizer::accumulate`]: the
    /// mean over micro-batches.
    pub fn loss_scale(&self) -> f64 {
        1.0 / self.cfg.grad_accum as f64
    }

    /// [`Optimizer::backward`] for gradients computed elsewhere (e.g. with activation
    /// checkpointing, `crate::model::recompute`) of a loss already multiplied by
    /// [`Optimizer::loss_scale`].
    pub fn accumulate(&mut self, grads: &GradStore) -> Result<Option<StepStats>> {
        self.accum.add(self.opt.params(), grads)?;
        if self.accum.micro_batches() < self.cfg.grad_accum {
            return Ok(None);
        }
        let grad_norm = self.accum.global_norm()?;
        let scale = self
            .cfg
            .max_grad_norm
            .map_or(1.0, |max| optim::clip_scale(grad_norm, max));
        let lr = self.cfg.schedule.lr_at(self.step);
        let g = self.accum.take();
        self.opt.step(&g, lr, scale)?;
        let stats = StepStats {
            step: self.step,
            lr,
            grad_norm,
        };
        self.step += 1;
        Ok(Some(stats))
    }

    /// Write `optimizer.safetensors` and `trainer_state.json` into `dir` (e.g. inside a checkpoint
    /// folder being written atomically).
    pub fn save_state(&self, dir: &Path) -> Result<()> {
        self.opt.save(&dir.join("optimizer.safetensors"))?;
        let state = OptimizerState {
            step: self.step,
            adam_updates: self.opt.updates(),
        };
        // The file keeps its name from before the rename: checkpoints written then still load.
        let p = dir.join("trainer_state.json");
        std::fs::write(&p, serde_json::to_string_pretty(&state).expect("json"))
            .map_err(|e| ModelError::io(&p, e))
    }

    /// Resume from what [`Optimizer::save_state`] wrote.
    pub fn load_state(&mut self, dir: &Path) -> Result<()> {
        let p = dir.join("trainer_state.json");
        let text = std::fs::read_to_string(&p).map_err(|e| ModelError::io(&p, e))?;
        let state: OptimizerState = serde_json::from_str(&text)
            .map_err(|e| ModelError::invalid(&p, format!("not a trainer state: {e}")))?;
        self.opt
            .load(&dir.join("optimizer.safetensors"), state.adam_updates)?;
        self.step = state.step;
        Ok(())
    }
}
