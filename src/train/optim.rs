//! AdamW with decoupled weight decay, global-norm gradient clipping and gradient accumulation.
//! Written here rather than using `candle_nn::AdamW` because a resumable checkpoint needs the
//! moment estimates, which candle's optimizer keeps private.

use std::collections::HashMap;
use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use crate::model::checkpoint::save_safetensors;
use crate::model::{ModelError, Result};

/// AdamW's hyper-parameters (the learning rate comes from the schedule).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Decoupled decay, applied to matrices only: decaying norm gains and biases toward zero
    /// hurts and is the common exclusion.
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// The trainable parameters of a VarMap, sorted by name (a stable order for state files).
pub fn params_of(varmap: &VarMap) -> Vec<(String, Var)> {
    let data = varmap.data().lock().expect("varmap lock");
    let mut v: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// AdamW over a fixed list of named Vars.
pub struct AdamW {
    cfg: AdamWConfig,
    params: Vec<(String, Var)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    /// Updates done (Adam's bias correction uses it).
    t: usize,
}

impl AdamW {
    pub fn new(params: Vec<(String, Var)>, cfg: AdamWConfig) -> Result<Self> {
        let m = params
            .iter()
            .map(|(_, p)| p.as_tensor().zeros_like())
            .collect::<candle_core::Result<Vec<_>>>()?;
        let v = m.clone();
        Ok(AdamW {
            cfg,
            params,
            m,
            v,
            t: 0,
        })
    }

    pub fn params(&self) -> &[(String, Var)] {
        &self.params
    }
    pub fn updates(&self) -> usize {
        self.t
    }

    /// One update with `grads` aligned to [`AdamW::params`] (None: the parameter got no gradient
    /// and is left as is).
    pub fn step(&mut self, grads: &[Option<Tensor>], lr: f64) -> Result<()> {
        self.t += 1;
        let (b1, b2) = (self.cfg.beta1, self.cfg.beta2);
        let bc1 = 1.0 - b1.powi(self.t as i32);
        let bc2 = 1.0 - b2.powi(self.t as i32);
        for (i, (_, p)) in self.params.iter().enumerate() {
            let Some(g) = &grads[i] else { continue };
            let m = ((&self.m[i] * b1)? + (g * (1.0 - b1))?)?;
            let v = ((&self.v[i] * b2)? + (g.sqr()? * (1.0 - b2))?)?;
            let update = ((&m / bc1)? / ((&v / bc2)?.sqrt()? + self.cfg.eps)?)?;
            let theta = p.as_tensor();
            let decayed = if self.cfg.weight_decay > 0.0 && theta.rank() >= 2 {
                (theta * (1.0 - lr * self.cfg.weight_decay))?
            } else {
                theta.clone()
            };
            p.set(&(decayed - (update * lr)?)?)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }

    /// Write the moments (`exp_avg.<name>`, `exp_avg_sq.<name>`) to a safetensors file.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut out = Vec::with_capacity(self.params.len() * 2);
        for (i, (name, _)) in self.params.iter().enumerate() {
            out.push((format!("exp_avg.{name}"), self.m[i].clone()));
            out.push((format!("exp_avg_sq.{name}"), self.v[i].clone()));
        }
        save_safetensors(path, out)
    }

    /// Read moments written by [`AdamW::save`]; `updates` is the saved update count.
    pub fn load(&mut self, path: &Path, updates: usize) -> Result<()> {
        let dev = self
            .m
            .first()
            .map(|t| t.device().clone())
            .unwrap_or(candle_core::Device::Cpu);
        let data: HashMap<String, Tensor> =
            candle_core::safetensors::load(path, &dev).map_err(|e| ModelError::Candle {
                context: path.display().to_string(),
                source: e,
            })?;
        for (i, (name, p)) in self.params.iter().enumerate() {
            for (key, slot) in [("exp_avg", &mut self.m[i]), ("exp_avg_sq", &mut self.v[i])] {
                let k = format!("{key}.{name}");
                let t = data.get(&k).ok_or_else(|| ModelError::MissingTensor {
                    path: path.to_path_buf(),
                    name: k.clone(),
                })?;
                if t.dims() != p.dims() {
                    return Err(ModelError::ShapeMismatch {
                        path: path.to_path_buf(),
                        name: k,
                        expected: p.dims().to_vec(),
                        found: t.dims().to_vec(),
                    });
                }
                *slot = t.clone();
            }
        }
        self.t = updates;
        Ok(())
    }
}

/// Sums gradients over micro-batches, aligned to a parameter list.
pub struct GradAccumulator {
    grads: Vec<Option<Tensor>>,
    micro: usize,
}

impl GradAccumulator {
    pub fn new(n_params: usize) -> Self {
        GradAccumulator {
            grads: vec![None; n_params],
            micro: 0,
        }
    }

    /// Micro-batches added since the last [`GradAccumulator::take`].
    pub fn micro_batches(&self) -> usize {
        self.micro
    }

    pub fn add(&mut self, params: &[(String, Var)], store: &GradStore) -> Result<()> {
        for (i, (_, p)) in params.iter().enumerate() {
            if let Some(g) = store.get(p.as_tensor()) {
                self.grads[i] = Some(match self.grads[i].take() {
                    Some(acc) => (acc + g)?,
                    None => g.clone(),
                });
            }
        }
        self.micro += 1;
        Ok(())
    }

    /// The global L2 norm of the accumulated gradients (summed in f32 on the gradients' device,
    /// one transfer to the host: on CUDA a read per tensor would sync hundreds of times a step).
    pub fn global_norm(&self) -> Result<f64> {
        let parts = self
            .grads
            .iter()
            .flatten()
            .map(|g| g.to_dtype(candle_core::DType::F32)?.sqr()?.sum_all())
            .collect::<candle_core::Result<Vec<_>>>()?;
        if parts.is_empty() {
            return Ok(0.0);
        }
        let sq = Tensor::stack(&parts, 0)?.sum_all()?.to_scalar::<f32>()? as f64;
        Ok(sq.sqrt())
    }

    /// Scale so that the global norm is at most `max_norm`; returns the norm before clipping.
    pub fn clip(&mut self, max_norm: f64) -> Result<f64> {
        let norm = self.global_norm()?;
        if norm > max_norm && norm > 0.0 {
            let s = max_norm / (norm + 1e-6);
            for g in self.grads.iter_mut().flatten() {
                *g = (&*g * s)?;
            }
        }
        Ok(norm)
    }

    /// Parameters that received no gradient (a check that the graph reaches every weight).
    pub fn missing(&self, params: &[(String, Var)]) -> Vec<String> {
        params
            .iter()
            .zip(&self.grads)
            .filter(|(_, g)| g.is_none())
            .map(|((n, _), _)| n.clone())
            .collect()
    }

    /// The summed gradients, resetting the accumulator.
    pub fn take(&mut self) -> Vec<Option<Tensor>> {
        self.micro = 0;
        let n = self.grads.len();
        std::mem::replace(&mut self.grads, vec![None; n])
    }
}
