//! The LM head and the token log-prob as one autograd node (CPU, f32): hidden [N, H] and output
//! weight [V, H] → log p(target) [N].
//!
//! Composed, `dense → token_logprobs` makes the [N, V] logits a graph node, so candle's backward
//! gives it a zero-filled gradient buffer and adds the token op's gradient into it: two more
//! [N, V] buffers (134 MB each for 8 × 256 tokens of a 16k vocabulary), each faulted in, filled
//! and read, before the head's two GEMMs. Here the op keeps the logits it computed in the forward
//! (outside the graph; the composition keeps them too), and the backward overwrites them in place
//! with g · (onehot − softmax) and runs the two GEMMs on that buffer. Same GEMMs, no extra
//! [N, V] traffic. [`crate::linear_token_logprobs`] is the other trade: no [N, V] buffer at all,
//! for one more GEMM (for when the logits do not fit).

use std::sync::Mutex;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

use crate::{IGNORE, fastmath};

/// log p(target) per row with logits = hidden · weightᵀ. `hidden [N, H]`, `weight [V, H]`, f32 on
/// the CPU; `targets [N]` u32, rows with target [`IGNORE`] give 0 and no gradient. Differentiable
/// in `hidden` and `weight`.
pub fn head_logprobs(hidden: &Tensor, weight: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let (n, h) = hidden.dims2()?;
    let (v, wh) = weight.dims2()?;
    if h != wh {
        bail!("head_logprobs: hidden width {h} differs from the weight's width {wh}");
    }
    if targets.dims() != [n] {
        bail!(
            "head_logprobs: targets {:?}, expected [{n}]",
            targets.dims()
        );
    }
    for t in [hidden, weight] {
        if !t.device().is_cpu() || t.dtype() != candle_core::DType::F32 {
            bail!("head_logprobs: the fused op is for f32 on the CPU");
        }
    }
    let targets = targets.to_vec1::<u32>()?;
    if let Some(bad) = targets.iter().find(|&&t| t != IGNORE && t as usize >= v) {
        bail!("head_logprobs: target {bad} is outside the vocabulary of {v}");
    }
    hidden.contiguous()?.apply_op2(
        &weight.contiguous()?,
        Head {
            targets,
            kept: Mutex::new(None),
        },
    )
}

struct Head {
    targets: Vec<u32>,
    /// The forward's logits and each row's log-sum-exp, for the backward (taken by it).
    kept: Mutex<Option<(Vec<f32>, Vec<f32>)>>,
}

impl Head {
    /// Logits [N, V] and per-row log-sum-exp (max folded in).
    fn logits(
        &self,
        s_h: &CpuStorage,
        l_h: &Layout,
        s_w: &CpuStorage,
        l_w: &Layout,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let (n, h) = l_h.shape().dims2()?;
        let (v, _) = l_w.shape().dims2()?;
        let logits = match s_h.matmul(s_w, (1, n, v, h), l_h, &l_w.transpose(0, 1)?)? {
            CpuStorage::F32(x) => x,
            _ => bail!("head_logprobs: expected f32"),
        };
        let lse = logits
            .par_chunks(v)
            .map(|row| {
                let max = fastmath::max(row);
                max + fastmath::sum_exp(row, max).ln()
            })
            .collect();
        Ok((logits, lse))
    }
}

impl CustomOp2 for Head {
    fn name(&self) -> &'static str {
        "head-logprobs"
    }

    fn cpu_fwd(
        &self,
        s_h: &CpuStorage,
        l_h: &Layout,
        s_w: &CpuStorage,
        l_w: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (logits, lse) = self.logits(s_h, l_h, s_w, l_w)?;
        let v = l_w.shape().dims2()?.0;
        let lp: Vec<f32> = self
            .targets
            .iter()
            .enumerate()
            .map(|(r, &t)| {
                if t == IGNORE {
                    0.0
                } else {
                    logits[r * v + t as usize] - lse[r]
                }
            })
            .collect();
        *self.kept.lock().expect("not poisoned") = Some((logits, lse));
        Ok((CpuStorage::F32(lp), Shape::from(self.targets.len())))
    }

    fn bwd(
        &self,
        hidden: &Tensor,
        weight: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let needs = crate::host::needs_grad;
        let (hd, wd) = (hidden.detach(), weight.detach());
        let (n, v) = (self.targets.len(), wd.dim(0)?);
        let kept = self.kept.lock().expect("not poisoned").take();
        // A second backward through the same graph finds the buffer gone: recompute it.
        let (mut d, lse) = match kept {
            Some(k) => k,
            None => {
                let (s_h, l_h) = hd.storage_and_layout();
                let (s_w, l_w) = wd.storage_and_layout();
                match (&*s_h, &*s_w) {
                    (candle_core::Storage::Cpu(a), candle_core::Storage::Cpu(b)) => {
                        self.logits(a, l_h, b, l_w)?
                    }
                    _ => bail!("head_logprobs: expected CPU tensors"),
                }
            }
        };
        let g = grad.detach().to_vec1::<f32>()?;
        // d[r] = g[r] · (onehot(target) − softmax(logits[r])), over the logits in place.
        d.par_chunks_mut(v).enumerate().for_each(|(r, row)| {
            let t = self.targets[r];
            if t == IGNORE || g[r] == 0.0 {
                row.fill(0.0);
                return;
            }
            let neg_g = -g[r];
            for x in row.iter_mut() {
                *x = neg_g * fastmath::exp(*x - lse[r]);
            }
            row[t as usize] += g[r];
        });
        let d = Tensor::from_vec(d, (n, v), hd.device())?;
        let grad_h = if needs(hidden) {
            Some(d.matmul(&wd)?)
        } else {
            None
        };
        let grad_w = if needs(weight) {
            Some(d.t()?.matmul(&hd)?)
        } else {
            None
        };
        Ok((grad_h, grad_w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{max_abs, rand};
    use candle_core::{Device, Var};

    #[test]
    fn matches_dense_then_token_logprobs_with_gradients() {
        let dev = Device::Cpu;
        let (n, h, v) = (7, 16, 53);
        let hidden = Var::from_tensor(&rand(&[n, h], 1)).unwrap();
        let weight = Var::from_tensor(&rand(&[v, h], 2)).unwrap();
        let targets = Tensor::new(&[3u32, 0, 52, IGNORE, 17, 17, 9], &dev).unwrap();
        let fused = head_logprobs(hidden.as_tensor(), weight.as_tensor(), &targets).unwrap();
        let logits = crate::dense(hidden.as_tensor(), weight.as_tensor()).unwrap();
        let plain = crate::token_logprobs(&logits, &targets, None).unwrap();
        assert!(max_abs(&fused, &plain) < 1e-5);
        assert_eq!(
            fused.to_vec1::<f32>().unwrap()[3],
            0.0,
            "an IGNORE row gives 0"
        );
        // Per-row weights, as a preference loss gives them.
        let w = rand(&[n], 3);
        let weighted_backward =
            |lp: &Tensor| (lp * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let gf = weighted_backward(&fused);
        let gp = weighted_backward(&plain);
        for var in [&hidden, &weight] {
            let (a, b) = (gf.get(var).unwrap(), gp.get(var).unwrap());
            assert!(max_abs(a, b) < 1e-5, "gradients differ");
            assert!(
                max_abs(a, &a.zeros_like().unwrap()) > 1e-3,
                "a gradient is zero"
            );
        }
        // A second backward through the same graph recomputes the logits the first one used up.
        let again = weighted_backward(&fused);
        for var in [&hidden, &weight] {
            assert!(max_abs(gf.get(var).unwrap(), again.get(var).unwrap()) < 1e-6);
        }
        // Only the gradients some operand needs: a frozen weight gets none.
        let frozen = weight.as_tensor().detach();
        let out = head_logprobs(hidden.as_tensor(), &frozen, &targets).unwrap();
        let g = out.sum_all().unwrap().backward().unwrap();
        assert!(g.get(&frozen).is_none());
        assert!(g.get(hidden.as_tensor()).is_some());
        assert!(
            head_logprobs(
                hidden.as_tensor(),
                weight.as_tensor(),
                &targets.narrow(0, 0, 3).unwrap()
            )
            .is_err()
        );
    }

    #[test]
    fn matches_the_composition_at_training_scale() {
        let (n, h, v) = (300, 64, 1000);
        let hidden = Var::from_tensor(&(rand(&[n, h], 5) * 8.0).unwrap()).unwrap();
        let weight = Var::from_tensor(&(rand(&[v, h], 6) * 3.0).unwrap()).unwrap();
        let t: Vec<u32> = (0..n as u32).map(|i| (i * 37) % v as u32).collect();
        let targets = Tensor::new(t.as_slice(), &candle_core::Device::Cpu).unwrap();
        let fused = head_logprobs(hidden.as_tensor(), weight.as_tensor(), &targets).unwrap();
        let logits = crate::dense(hidden.as_tensor(), weight.as_tensor()).unwrap();
        let plain = crate::token_logprobs(&logits, &targets, None).unwrap();
        // Logits up to ~±40, as a trained model's: values and gradients still agree.
        assert!(max_abs(&fused, &plain) < 1e-4);
        let gf = (fused.sum_all().unwrap() / n as f64)
            .unwrap()
            .backward()
            .unwrap();
        let gp = (plain.sum_all().unwrap() / n as f64)
            .unwrap()
            .backward()
            .unwrap();
        for var in [&hidden, &weight] {
            let (a, b) = (gf.get(var).unwrap(), gp.get(var).unwrap());
            let scale = max_abs(a, &a.zeros_like().unwrap());
            assert!(scale > 1e-3 && max_abs(a, b) < 1e-5 * scale.max(1.0));
        }
    }
}
