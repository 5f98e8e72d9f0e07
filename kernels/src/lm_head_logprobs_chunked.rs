//! Fused linear log-prob: hidden [N, H] and output projection weight [V, H] → log p(target) [N],
//! without the [N, V] logits ever existing.
//!
//! Forward: rows in chunks of `chunk_rows`; each chunk's logits [chunk, V] are made by one matmul,
//! reduced by the token kernel to `[log p, max, lse]` per row, and dropped.
//!
//! Backward: the statistics make d log p / d logits computable for any tile of (rows × vocab), so
//! the backward walks vocabulary blocks of [`VOCAB_BLOCK`] and, inside each, row chunks: recompute
//! the logits tile, turn it into g · (onehot − softmax) in one pass, and accumulate
//! grad_hidden += d · W_block and grad_W_block += dᵀ · hidden_chunk. Each finished weight block is
//! written in place into the preallocated weight gradient, so the extra memory is one tile plus one
//! [VOCAB_BLOCK, H] accumulator, whatever N is.
//!
//! Why not Liger-Kernel's trick of computing the gradients during the forward and scaling them in
//! the backward: that is exact only when the upstream gradient is one scalar for all rows (a mean
//! loss computed inside the op). Here the op returns per-token log-probs and the trainer's loss
//! (DPO, SPIN) weights every sequence differently, so grad_W = Σᵢ gᵢ dᵢᵀhᵢ cannot be formed before
//! the gᵢ are known. Recomputing the logits costs one extra matmul in the backward (3 instead of
//! 2), and a forward-only call (reference log-probs) pays for none of it.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Storage, Tensor, bail};

use crate::token::{masked_targets, token_grad, token_stats_no_grad};

/// Default rows per forward chunk: 256 rows of a 151,936 vocabulary is 155 MB of f32 logits.
pub const DEFAULT_CHUNK_ROWS: usize = 256;

/// Vocabulary columns per backward tile.
pub const VOCAB_BLOCK: usize = 16_384;

/// log p(target) for each row, with logits = hidden · weightᵀ, computed `chunk_rows` rows at a time.
///
/// `hidden` [N, H], `weight` [V, H] (same dtype and device), `targets` [N] u32, `mask` as in
/// [`crate::token_logprobs`]. Differentiable with respect to `hidden` and `weight`.
pub fn linear_token_logprobs(
    hidden: &Tensor,
    weight: &Tensor,
    targets: &Tensor,
    mask: Option<&Tensor>,
    chunk_rows: usize,
) -> Result<Tensor> {
    let (n, h) = hidden.dims2()?;
    let (_, wh) = weight.dims2()?;
    if h != wh {
        bail!("hidden width {h} differs from weight width {wh}");
    }
    if targets.dims() != [n] {
        bail!("targets shape {:?}, expected [{n}]", targets.dims());
    }
    let chunk_rows = chunk_rows.max(1);
    let targets = masked_targets(targets, mask)?;
    let (hd, wd) = (hidden.detach(), weight.detach());
    let wt = wd.t()?;
    let mut parts = Vec::with_capacity(n.div_ceil(chunk_rows));
    for start in (0..n).step_by(chunk_rows) {
        let len = chunk_rows.min(n - start);
        let logits = hd.narrow(0, start, len)?.matmul(&wt)?;
        parts.push(token_stats_no_grad(
            &logits,
            &targets.narrow(0, start, len)?,
        )?);
    }
    let stats = Tensor::cat(&parts, 0)?;
    let op = LinearLogprob { stats, chunk_rows };
    let out = hidden.apply_op3_arc(weight, &targets, Arc::new(Box::new(op)))?;
    // Contiguous for candle's CUDA matmul, as `token_logprobs`'s.
    out.narrow(1, 0, 1)?.squeeze(1)?.contiguous()
}

/// Hands candle's autograd the statistics computed above (its "forward" is a copy of them) and
/// does the tiled backward.
struct LinearLogprob {
    stats: Tensor,
    chunk_rows: usize,
}

impl LinearLogprob {
    fn stats_storage(&self) -> Result<Storage> {
        let (storage, layout) = self.stats.storage_and_layout();
        storage.try_clone(layout)
    }
}

impl CustomOp3 for LinearLogprob {
    fn name(&self) -> &'static str {
        "linear-token-logprob"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        match self.stats_storage()? {
            Storage::Cpu(s) => Ok((s, self.stats.shape().clone())),
            _ => bail!("linear-token-logprob: statistics are not on the CPU"),
        }
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        _: &candle_core::CudaStorage,
        _: &Layout,
        _: &candle_core::CudaStorage,
        _: &Layout,
        _: &candle_core::CudaStorage,
        _: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        match self.stats_storage()? {
            Storage::Cuda(s) => Ok((s, self.stats.shape().clone())),
            _ => bail!("linear-token-logprob: statistics are not on the GPU"),
        }
    }

    fn bwd(
        &self,
        hidden: &Tensor,
        weight: &Tensor,
        targets: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, _) = hidden.dims2()?;
        let (v, _) = weight.dims2()?;
        let grad = grad_res.narrow(1, 0, 1)?.squeeze(1)?;
        let (hd, wd) = (hidden.detach(), weight.detach());
        let grad_w = wd.zeros_like()?;
        let rows: Vec<(usize, usize)> = (0..n)
            .step_by(self.chunk_rows)
            .map(|s| (s, self.chunk_rows.min(n - s)))
            .collect();
        let mut grad_h: Vec<Option<Tensor>> = vec![None; rows.len()];
        for vstart in (0..v).step_by(VOCAB_BLOCK) {
            let vlen = VOCAB_BLOCK.min(v - vstart);
            let w_block = wd.narrow(0, vstart, vlen)?;
            let w_block_t = w_block.t()?;
            let mut gw: Option<Tensor> = None;
            for (k, &(start, len)) in rows.iter().enumerate() {
                let h_chunk = hd.narrow(0, start, len)?;
                let logits = h_chunk.matmul(&w_block_t)?;
                let d = token_grad(
                    &logits,
                    &targets.narrow(0, start, len)?,
                    &grad.narrow(0, start, len)?,
                    &res.narrow(0, start, len)?,
                    vstart,
                )?;
                drop(logits);
                let gh = d.matmul(&w_block)?;
                grad_h[k] = Some(match grad_h[k].take() {
                    Some(acc) => (acc + gh)?,
                    None => gh,
                });
                let gwk = d.t()?.matmul(&h_chunk)?;
                gw = Some(match gw {
                    Some(acc) => (acc + gwk)?,
                    None => gwk,
                });
            }
            if let Some(gw) = gw {
                grad_w.slice_set(&gw.contiguous()?, 0, vstart)?;
            }
        }
        let grad_h: Vec<Tensor> = grad_h.into_iter().flatten().collect();
        let grad_h = if grad_h.is_empty() {
            hd.zeros_like()?
        } else {
            Tensor::cat(&grad_h, 0)?
        };
        Ok((Some(grad_h), Some(grad_w), None))
    }
}
