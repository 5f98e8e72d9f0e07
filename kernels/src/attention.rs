//! Scaled dot-product attention with an additive mask and grouped key/value heads, as one
//! autograd node (CPU, f32).
//!
//! Composed from candle ops, `softmax(q·kᵀ·s + mask)·v` is about ten nodes over the
//! `[batch, heads, queries, keys]` score tensor (scale, mask add, max, subtract, exp, sum, divide,
//! plus `repeat_kv`'s copies of k and v for every query head), and candle's backward visits each
//! with a zero-filled gradient buffer and an add: dozens of passes over the largest activation of
//! a layer. Here the forward is two batched GEMMs around one softmax pass, and the backward
//! recomputes the probabilities (one GEMM, cheaper than keeping them) and forms
//! `dS = P ⊙ (dP − rowsum(dP ⊙ P))` in one pass between four GEMMs.
//!
//! Grouped-query attention needs no copies: the `rep = heads / kv_heads` query heads that share a
//! key/value head are contiguous, so `q [b, heads, tq, d]` is read as `[b·kv_heads, rep·tq, d]`
//! and multiplied by that group's `k [tq, d]` directly; query row `r` of a group is position
//! `r mod tq`, which is how the mask is indexed.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

use crate::fastmath;
use crate::host::contiguous_f32;

/// `softmax(q·kᵀ·scale + mask) · v` → `[b, heads, tq, d]`.
///
/// `q [b, heads, tq, d]`, `k`/`v [b, kv_heads, tk, d]` with `heads` a multiple of `kv_heads`,
/// `mask [b, 1, tq, tk]` added to the scaled scores (large negative values mask a key). All f32
/// on the CPU. Differentiable in q, k and v (not in the mask).
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor, scale: f64) -> Result<Tensor> {
    let geometry = Geometry::of(q, k, v, mask)?;
    let op = Attention {
        geometry,
        mask: mask.contiguous()?.detach(),
        scale: scale as f32,
    };
    q.contiguous()?
        .apply_op3(&k.contiguous()?, &v.contiguous()?, op)
}

#[derive(Debug, Clone, Copy)]
struct Geometry {
    b: usize,
    heads: usize,
    kv_heads: usize,
    tq: usize,
    tk: usize,
    d: usize,
}

impl Geometry {
    fn of(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor) -> Result<Self> {
        let (b, heads, tq, d) = q.dims4()?;
        let (kb, kv_heads, tk, kd) = k.dims4()?;
        if (kb, kd) != (b, d) || v.dims() != k.dims() {
            bail!(
                "attention: q {:?}, k {:?} and v {:?} do not agree",
                q.dims(),
                k.dims(),
                v.dims()
            );
        }
        if kv_heads == 0 || heads % kv_heads != 0 {
            bail!("attention: {heads} query heads are not a multiple of {kv_heads} kv heads");
        }
        if mask.dims() != [b, 1, tq, tk] {
            bail!(
                "attention: mask {:?}, expected [{b}, 1, {tq}, {tk}]",
                mask.dims()
            );
        }
        for t in [q, k, v, mask] {
            if !t.device().is_cpu() || t.dtype() != candle_core::DType::F32 {
                bail!("attention: the fused op is for f32 on the CPU");
            }
        }
        Ok(Geometry {
            b,
            heads,
            kv_heads,
            tq,
            tk,
            d,
        })
    }

    /// Key/value groups (batched GEMMs).
    fn groups(&self) -> usize {
        self.b * self.kv_heads
    }
    /// Query rows per group.
    fn rows(&self) -> usize {
        self.heads / self.kv_heads * self.tq
    }
    fn q_layout(&self, offset: usize) -> Layout {
        Layout::contiguous_with_offset((self.groups(), self.rows(), self.d), offset)
    }
    fn kv_layout(&self, offset: usize) -> Layout {
        Layout::contiguous_with_offset((self.groups(), self.tk, self.d), offset)
    }
}

fn into_f32(s: CpuStorage) -> Result<Vec<f32>> {
    match s {
        CpuStorage::F32(v) => Ok(v),
        _ => bail!("attention: expected f32"),
    }
}

/// P = softmax(q·kᵀ·scale + mask) as `[groups, rows, tk]`.
fn probabilities(
    g: &Geometry,
    mask: &Tensor,
    scale: f32,
    s_q: &CpuStorage,
    l_q: &Layout,
    s_k: &CpuStorage,
    l_k: &Layout,
) -> Result<Vec<f32>> {
    let lq = g.q_layout(l_q.start_offset());
    let lkt = g.kv_layout(l_k.start_offset()).transpose(1, 2)?;
    let scores = s_q.matmul(s_k, (g.groups(), g.rows(), g.tk, g.d), &lq, &lkt)?;
    let mut p = into_f32(scores)?;
    let (mask_storage, mask_layout) = mask.storage_and_layout();
    let mask = match &*mask_storage {
        candle_core::Storage::Cpu(s) => contiguous_f32("attention", s, mask_layout)?,
        _ => bail!("attention: the mask is not on the CPU"),
    };
    let (rows, tk, tq, kv_heads) = (g.rows(), g.tk, g.tq, g.kv_heads);
    p.par_chunks_mut(tk).enumerate().for_each(|(i, row)| {
        let batch = i / rows / kv_heads;
        let qpos = (i % rows) % tq;
        let m = &mask[(batch * tq + qpos) * tk..][..tk];
        for (x, &mk) in row.iter_mut().zip(m) {
            *x = *x * scale + mk;
        }
        // Separate passes over the (L1-resident) row so that each one vectorizes.
        let max = fastmath::max(row);
        for x in row.iter_mut() {
            *x = fastmath::exp(*x - max);
        }
        let inv = 1.0 / fastmath::sum(row);
        for x in row.iter_mut() {
            *x *= inv;
        }
    });
    Ok(p)
}

struct Attention {
    geometry: Geometry,
    mask: Tensor,
    scale: f32,
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "attention"
    }

    fn cpu_fwd(
        &self,
        s_q: &CpuStorage,
        l_q: &Layout,
        s_k: &CpuStorage,
        l_k: &Layout,
        s_v: &CpuStorage,
        l_v: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = &self.geometry;
        let p = probabilities(g, &self.mask, self.scale, s_q, l_q, s_k, l_k)?;
        let lp = Layout::contiguous((g.groups(), g.rows(), g.tk));
        let lv = g.kv_layout(l_v.start_offset());
        let out = CpuStorage::F32(p).matmul(s_v, (g.groups(), g.rows(), g.d, g.tk), &lp, &lv)?;
        Ok((out, Shape::from((g.b, g.heads, g.tq, g.d))))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = self.geometry;
        let needs = crate::host::needs_grad;
        let (gr, rows, tk, d) = (g.groups(), g.rows(), g.tk, g.d);
        let q3 = q.detach().reshape((gr, rows, d))?;
        let k3 = k.detach().reshape((gr, tk, d))?;
        let v3 = v.detach().reshape((gr, tk, d))?;
        let go = grad.detach().contiguous()?.reshape((gr, rows, d))?;
        let p = q3.apply_op2_no_bwd(
            &k3,
            &Probabilities {
                geometry: g,
                mask: self.mask.clone(),
                scale: self.scale,
            },
        )?;
        let grad_v = if needs(v) {
            Some(p.t()?.matmul(&go)?.reshape(v.dims())?)
        } else {
            None
        };
        let (grad_q, grad_k) = if needs(q) || needs(k) {
            let dp = go.matmul(&v3.t()?)?;
            let ds = p.apply_op2_no_bwd(&dp, &SoftmaxBackward { scale: self.scale })?;
            let gq = if needs(q) {
                Some(ds.matmul(&k3)?.reshape(q.dims())?)
            } else {
                None
            };
            let gk = if needs(k) {
                Some(ds.t()?.matmul(&q3)?.reshape(k.dims())?)
            } else {
                None
            };
            (gq, gk)
        } else {
            (None, None)
        };
        Ok((grad_q, grad_k, grad_v))
    }
}

/// The forward's probabilities alone (the backward recomputes them).
struct Probabilities {
    geometry: Geometry,
    mask: Tensor,
    scale: f32,
}

impl CustomOp2 for Probabilities {
    fn name(&self) -> &'static str {
        "attention-probabilities"
    }

    fn cpu_fwd(
        &self,
        s_q: &CpuStorage,
        l_q: &Layout,
        s_k: &CpuStorage,
        l_k: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = &self.geometry;
        let p = probabilities(g, &self.mask, self.scale, s_q, l_q, s_k, l_k)?;
        Ok((
            CpuStorage::F32(p),
            Shape::from((g.groups(), g.rows(), g.tk)),
        ))
    }
}

/// dS = P ⊙ (dP − rowsum(dP ⊙ P)) · scale: the gradient of the scaled scores.
struct SoftmaxBackward {
    scale: f32,
}

impl CustomOp2 for SoftmaxBackward {
    fn name(&self) -> &'static str {
        "attention-softmax-backward"
    }

    fn cpu_fwd(
        &self,
        s_p: &CpuStorage,
        l_p: &Layout,
        s_dp: &CpuStorage,
        l_dp: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        if !l_p.is_contiguous() || !l_dp.is_contiguous() {
            bail!("attention-softmax-backward: operands must be contiguous");
        }
        let p = contiguous_f32("attention", s_p, l_p)?;
        let dp = contiguous_f32("attention", s_dp, l_dp)?;
        let tk = *l_p.dims().last().unwrap_or(&1);
        let mut out = vec![0f32; p.len()];
        out.par_chunks_mut(tk)
            .zip(p.par_chunks(tk).zip(dp.par_chunks(tk)))
            .for_each(|(o, (p, dp))| {
                let dot = fastmath::dot(p, dp);
                for j in 0..o.len() {
                    o[j] = p[j] * (dp[j] - dot) * self.scale;
                }
            });
        Ok((CpuStorage::F32(out), l_p.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{max_abs, rand};
    use candle_core::{D, Device, Var};

    /// The candle composition the decoder used before: repeat_kv, matmul, softmax, matmul.
    fn reference(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor, scale: f64) -> Tensor {
        let (b, h, _, _) = q.dims4().unwrap();
        let (_, kvh, tk, d) = k.dims4().unwrap();
        let rep = |x: &Tensor| {
            x.unsqueeze(2)
                .unwrap()
                .expand((b, kvh, h / kvh, tk, d))
                .unwrap()
                .contiguous()
                .unwrap()
                .reshape((b, h, tk, d))
                .unwrap()
        };
        let s = (q.matmul(&rep(k).t().unwrap()).unwrap() * scale)
            .unwrap()
            .broadcast_add(mask)
            .unwrap();
        let max = s.max_keepdim(D::Minus1).unwrap().detach();
        let e = s.broadcast_sub(&max).unwrap().exp().unwrap();
        let p = e.broadcast_div(&e.sum_keepdim(D::Minus1).unwrap()).unwrap();
        p.matmul(&rep(v)).unwrap()
    }

    fn causal_padded_mask(b: usize, tq: usize, tk: usize) -> Tensor {
        let past = tk - tq;
        let mut m = vec![0f32; b * tq * tk];
        for r in 0..b {
            for i in 0..tq {
                for j in 0..tk {
                    // Row 1 has its first key padded; causal over the rest.
                    if j > past + i || (r == 1 && j == 0) {
                        m[(r * tq + i) * tk + j] = -1e9;
                    }
                }
            }
        }
        Tensor::from_vec(m, (b, 1, tq, tk), &Device::Cpu).unwrap()
    }

    #[test]
    fn matches_the_composition_forward_and_backward_with_grouped_heads() {
        for (heads, kv, tq, tk) in [(4, 2, 5, 5), (6, 3, 3, 7), (2, 2, 4, 4), (4, 1, 1, 6)] {
            let (b, d) = (2, 8);
            let q = Var::from_tensor(&rand(&[b, heads, tq, d], 1)).unwrap();
            let k = Var::from_tensor(&rand(&[b, kv, tk, d], 2)).unwrap();
            let v = Var::from_tensor(&rand(&[b, kv, tk, d], 3)).unwrap();
            let mask = causal_padded_mask(b, tq, tk);
            let up = rand(&[b, heads, tq, d], 4);
            let ours = attention(&q, &k, &v, &mask, 0.35).unwrap();
            let theirs = reference(&q, &k, &v, &mask, 0.35);
            assert!(max_abs(&ours, &theirs) < 1e-5, "forward {heads}/{kv}");
            let g1 = (ours * &up).unwrap().sum_all().unwrap().backward().unwrap();
            let g2 = (theirs * &up)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            for (name, t) in [("q", &q), ("k", &k), ("v", &v)] {
                let (a, b) = (g1.get(t).unwrap(), g2.get(t).unwrap());
                assert_eq!(a.dims(), t.dims());
                let err = max_abs(a, b);
                assert!(
                    err < 1e-5,
                    "d{name} differs by {err} ({heads}/{kv}, {tq}x{tk})"
                );
            }
        }
    }

    #[test]
    fn inputs_that_need_no_gradient_get_none() {
        let q = Var::from_tensor(&rand(&[1, 2, 3, 4], 5)).unwrap();
        let k = rand(&[1, 1, 3, 4], 6);
        let v = rand(&[1, 1, 3, 4], 7);
        let mask = causal_padded_mask(1, 3, 3);
        let g = attention(&q, &k, &v, &mask, 0.5)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(g.get(&q).is_some());
        assert!(g.get(&k).is_none() && g.get(&v).is_none());
    }

    #[test]
    fn bad_shapes_are_errors() {
        let q = rand(&[1, 3, 2, 4], 8);
        let kv = rand(&[1, 2, 2, 4], 9);
        let e = attention(&q, &kv, &kv, &causal_padded_mask(1, 2, 2), 1.0).unwrap_err();
        assert!(e.to_string().contains("multiple"), "{e}");
        let kv = rand(&[1, 1, 2, 4], 10);
        let e = attention(&q, &kv, &kv, &causal_padded_mask(1, 2, 3), 1.0).unwrap_err();
        assert!(e.to_string().contains("mask"), "{e}");
    }
}
