//! AdamW with decoupled weight decay, global-norm gradient clipping and gradient accumulation.
//! Written here rather than using `candle_nn::AdamW` because a resumable checkpoint needs the
//! moment estimates, which candle's optimizer keeps private.

use std::collections::HashMap;
use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};
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
    moments: Vec<Moments>,
    /// Updates done (Adam's bias correction uses it).
    t: usize,
}

/// First and second moment estimates of one parameter.
enum Moments {
    /// f32 CPU parameters: plain vectors, updated with the parameter in one pass
    /// ([`super::host_adamw`]).
    Host { m: Vec<f32>, v: Vec<f32> },
    /// Any other device or dtype: tensors beside the parameter, updated with tensor ops. For a
    /// bf16 / f16 parameter the moments are f32 and `master` holds its f32 master copy: updates
    /// accumulate there and the parameter is set to the master rounded to its dtype. (Updated in
    /// place, a bf16 weight of magnitude w cannot move by less than about w / 256: at a learning
    /// rate of 1e-6 every update rounds away.)
    Device {
        m: Tensor,
        v: Tensor,
        master: Option<Tensor>,
    },
}

/// Whether a parameter of `dtype` trains through an f32 master copy.
fn needs_master(dtype: DType) -> bool {
    matches!(dtype, DType::BF16 | DType::F16)
}

impl Moments {
    fn zeros_for(p: &Tensor) -> Result<Self> {
        Ok(if super::host_adamw::eligible(p) {
            let n = p.elem_count();
            Moments::Host {
                m: vec![0.0; n],
                v: vec![0.0; n],
            }
        } else if needs_master(p.dtype()) {
            Moments::Device {
                m: p.zeros_like()?.to_dtype(DType::F32)?,
                v: p.zeros_like()?.to_dtype(DType::F32)?,
                master: Some(p.to_dtype(DType::F32)?),
            }
        } else {
            Moments::Device {
                m: p.zeros_like()?,
                v: p.zeros_like()?,
                master: None,
            }
        })
    }

    /// (m, v) as tensors shaped like `p` (for saving).
    fn tensors(&self, p: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok(match self {
            Moments::Host { m, v } => (
                Tensor::from_slice(m, p.dims(), p.device())?,
                Tensor::from_slice(v, p.dims(), p.device())?,
            ),
            Moments::Device { m, v, .. } => (m.clone(), v.clone()),
        })
    }

    /// The f32 master copy of a half-precision parameter.
    fn master(&self) -> Option<&Tensor> {
        match self {
            Moments::Device { master, .. } => master.as_ref(),
            Moments::Host { .. } => None,
        }
    }

    /// Replace with loaded tensors (already checked to have `p`'s shape).
    fn set(&mut self, m: &Tensor, v: &Tensor) -> Result<()> {
        match self {
            Moments::Host { m: hm, v: hv } => {
                *hm = m.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
                *hv = v.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
            }
            Moments::Device {
                m: dm,
                v: dv,
                master,
            } => {
                // Moments of a half-precision parameter are f32 (older states stored them in the
                // parameter's dtype).
                let dtype = if master.is_some() {
                    DType::F32
                } else {
                    dm.dtype()
                };
                *dm = m.to_dtype(dtype)?;
                *dv = v.to_dtype(dtype)?;
            }
        }
        Ok(())
    }
}

impl AdamW {
    pub fn new(params: Vec<(String, Var)>, cfg: AdamWConfig) -> Result<Self> {
        let moments = params
            .iter()
            .map(|(_, p)| Moments::zeros_for(p.as_tensor()))
            .collect::<Result<Vec<_>>>()?;
        Ok(AdamW {
            cfg,
            params,
            moments,
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
    /// and is left as is), each gradient multiplied by `grad_scale` first (the clipping scale).
    pub fn step(&mut self, grads: &[Option<Tensor>], lr: f64, grad_scale: f64) -> Result<()> {
        self.t += 1;
        let (b1, b2) = (self.cfg.beta1, self.cfg.beta2);
        let bc1 = 1.0 - b1.powi(self.t as i32);
        let bc2 = 1.0 - b2.powi(self.t as i32);
        for (i, (_, p)) in self.params.iter().enumerate() {
            let Some(g) = &grads[i] else { continue };
            let theta = p.as_tensor();
            let decay = if self.cfg.weight_decay > 0.0 && theta.rank() >= 2 {
                1.0 - lr * self.cfg.weight_decay
            } else {
                1.0
            };
            match &mut self.moments[i] {
                Moments::Host { m, v } => {
                    let hyper = super::host_adamw::Hyper {
                        beta1: b1 as f32,
                        beta2: b2 as f32,
                        eps: self.cfg.eps as f32,
                        lr: lr as f32,
                        decay: decay as f32,
                        bc1: bc1 as f32,
                        bc2: bc2 as f32,
                        grad_scale: grad_scale as f32,
                    };
                    super::host_adamw::update(theta, g, m, v, hyper)?;
                }
                Moments::Device { m, v, master } => {
                    let g = match master {
                        Some(_) => g.to_dtype(DType::F32)?,
                        None => g.clone(),
                    };
                    let g = if grad_scale == 1.0 {
                        g
                    } else {
                        (g * grad_scale)?
                    };
                    let m_new = ((&*m * b1)? + (&g * (1.0 - b1))?)?;
                    let v_new = ((&*v * b2)? + (g.sqr()? * (1.0 - b2))?)?;
                    let update = ((&m_new / bc1)? / ((&v_new / bc2)?.sqrt()? + self.cfg.eps)?)?;
                    let base = master.as_ref().unwrap_or(theta);
                    let decayed = if decay == 1.0 {
                        base.clone()
                    } else {
                        (base * decay)?
                    };
                    let new = (decayed - (update * lr)?)?;
                    match master {
                        Some(ms) => {
                            p.set(&new.to_dtype(theta.dtype())?)?;
                            *ms = new;
                        }
                        None => p.set(&new)?,
                    }
                    *m = m_new;
                    *v = v_new;
                }
            }
        }
        Ok(())
    }

    /// Write the moments (`exp_avg.<name>`, `exp_avg_sq.<name>`) and the f32 masters of
    /// half-precision parameters (`master.<name>`) to a safetensors file.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut out = Vec::with_capacity(self.params.len() * 2);
        for ((name, p), moments) in self.params.iter().zip(&self.moments) {
            let (m, v) = moments.tensors(p.as_tensor())?;
            out.push((format!("exp_avg.{name}"), m));
            out.push((format!("exp_avg_sq.{name}"), v));
            if let Some(master) = moments.master() {
                out.push((format!("master.{name}"), master.clone()));
            }
        }
        save_safetensors(path, out)
    }

    /// The value training holds for parameter `i`: its f32 master for a half-precision
    /// parameter, else the parameter itself.
    pub fn trained_value(&self, i: usize) -> Tensor {
        match self.moments[i].master() {
            Some(master) => master.clone(),
            None => self.params[i].1.as_tensor().clone(),
        }
    }

    /// Read moments written by [`AdamW::save`]; `updates` is the saved update count.
    pub fn load(&mut self, path: &Path, updates: usize) -> Result<()> {
        let dev = self
            .params
            .first()
            .map(|(_, p)| p.device().clone())
            .unwrap_or(candle_core::Device::Cpu);
        let data: HashMap<String, Tensor> =
            candle_core::safetensors::load(path, &dev).map_err(|e| ModelError::Candle {
                context: path.display().to_string(),
                source: e,
            })?;
        for ((name, p), moments) in self.params.iter().zip(&mut self.moments) {
            let [m, v] = ["exp_avg", "exp_avg_sq"].map(|key| {
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
                Ok(t)
            });
            moments.set(m?, v?)?;
            // A master saved with the state; without one (a state written before masters), the
            // parameter as loaded is the best start there is.
            if let Moments::Device {
                master: Some(master),
                ..
            } = moments
            {
                *master = match data.get(&format!("master.{name}")) {
                    Some(t) if t.dims() == p.dims() => t.to_dtype(DType::F32)?,
                    _ => p.as_tensor().to_dtype(DType::F32)?,
                };
            }
        }
        self.t = updates;
        Ok(())
    }
}

/// The factor that brings a gradient of global norm `norm` down to at most `max_norm` (1 when it
/// is already within it), as `torch.nn.utils.clip_grad_norm_` computes it.
pub fn clip_scale(norm: f64, max_norm: f64) -> f64 {
    if norm > max_norm && norm > 0.0 {
        max_norm / (norm + 1e-6)
    } else {
        1.0
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

    /// The global L2 norm of the accumulated gradients: f32 CPU gradients are summed in one pass
    /// each; others in f32 on their device with one transfer to the host (on CUDA a read per
    /// tensor would sync hundreds of times a step).
    pub fn global_norm(&self) -> Result<f64> {
        let mut host = 0.0f64;
        let mut parts = Vec::new();
        for g in self.grads.iter().flatten() {
            if super::host_adamw::eligible(g) {
                host += super::host_adamw::sum_squares(g)?;
            } else {
                parts.push(g.to_dtype(DType::F32)?.sqr()?.sum_all()?);
            }
        }
        let device = if parts.is_empty() {
            0.0
        } else {
            Tensor::stack(&parts, 0)?.sum_all()?.to_scalar::<f32>()? as f64
        };
        Ok((host + device).sqrt())
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
