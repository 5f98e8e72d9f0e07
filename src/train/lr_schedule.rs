//! Learning-rate schedules: linear warmup, then cosine or linear decay to a floor, or constant.
//! (The runtime's round schedule, strict / async / phased, is another thing: `exspin_actors::config`.)

use serde::{Deserialize, Serialize};

/// The decay after warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decay {
    Cosine,
    Linear,
    Constant,
}

/// `lr(step)` for optimizer steps 0, 1, … (a step is one optimizer update, after accumulation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LrSchedule {
    pub peak_lr: f64,
    pub warmup_steps: usize,
    pub total_steps: usize,
    pub decay: Decay,
    /// The floor as a fraction of `peak_lr` (0 decays to zero).
    #[serde(default)]
    pub min_lr_ratio: f64,
}

impl LrSchedule {
    pub fn constant(lr: f64) -> Self {
        LrSchedule {
            peak_lr: lr,
            warmup_steps: 0,
            total_steps: 1,
            decay: Decay::Constant,
            min_lr_ratio: 1.0,
        }
    }

    pub fn lr_at(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            // Warmup reaches the peak at step == warmup_steps; step 0 already moves (lr > 0).
            return self.peak_lr * (step + 1) as f64 / (self.warmup_steps + 1) as f64;
        }
        let floor = self.peak_lr * self.min_lr_ratio;
        let span = self.total_steps.saturating_sub(self.warmup_steps).max(1);
        let progress = ((step - self.warmup_steps) as f64 / span as f64).min(1.0);
        match self.decay {
            Decay::Constant => self.peak_lr,
            Decay::Linear => floor + (self.peak_lr - floor) * (1.0 - progress),
            Decay::Cosine => {
                floor
                    + (self.peak_lr - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine_reaches_floor() {
        let s = LrSchedule {
            peak_lr: 1.0,
            warmup_steps: 4,
            total_steps: 14,
            decay: Decay::Cosine,
            min_lr_ratio: 0.1,
        };
        assert!((s.lr_at(0) - 0.2).abs() < 1e-12);
        assert!((s.lr_at(3) - 0.8).abs() < 1e-12);
        assert!((s.lr_at(4) - 1.0).abs() < 1e-12);
        assert!(
            (s.lr_at(9) - 0.55).abs() < 1e-12,
            "half way: {}",
            s.lr_at(9)
        );
        assert!((s.lr_at(14) - 0.1).abs() < 1e-12);
        assert!((s.lr_at(100) - 0.1).abs() < 1e-12);
        let l = LrSchedule {
            decay: Decay::Linear,
            ..s
        };
        assert!((l.lr_at(9) - 0.55).abs() < 1e-12);
    }
}
