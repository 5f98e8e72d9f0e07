//! CPU row kernels: rows in parallel (rayon), each row streamed once from memory in L1-sized
//! blocks that are converted to f32 and then read twice from cache (block max, then Σ exp).
//!
//! The per-row statistics `[log p(target), max, ln Σ e^(x − max)]` are the forward's output: the
//! backward recomputes the softmax from them in one pass instead of storing it.

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};
use rayon::prelude::*;

use crate::IGNORE;
use crate::fastmath;

/// Elements per block: 8 KB of f32, small enough to stay in L1 between its two reads.
const BLOCK: usize = 2048;

/// A logits element type the CPU path reads (and writes gradients in).
pub(crate) trait Elem: Copy + Send + Sync + 'static {
    fn zero() -> Self;
    fn to_f32(self) -> f32;
    fn load(src: &[Self], dst: &mut [f32]);
    fn store(src: &[f32], dst: &mut [Self]);
}

impl Elem for f32 {
    fn zero() -> Self {
        0.0
    }
    fn to_f32(self) -> f32 {
        self
    }
    fn load(src: &[Self], dst: &mut [f32]) {
        dst.copy_from_slice(src)
    }
    fn store(src: &[f32], dst: &mut [Self]) {
        dst.copy_from_slice(src)
    }
}

macro_rules! half_elem {
    ($t:ty) => {
        impl Elem for $t {
            fn zero() -> Self {
                <$t>::ZERO
            }
            fn to_f32(self) -> f32 {
                <$t>::to_f32(self)
            }
            fn load(src: &[Self], dst: &mut [f32]) {
                src.convert_to_f32_slice(dst)
            }
            fn store(src: &[f32], dst: &mut [Self]) {
                dst.convert_from_f32_slice(src)
            }
        }
    };
}
half_elem!(bf16);
half_elem!(f16);

/// `[log p(target), max, lse]` of one row, where lse = ln Σ e^(x − max).
fn row_forward<T: Elem>(row: &[T], target: usize) -> [f32; 3] {
    let mut buf = [0f32; BLOCK];
    let mut m = f32::NEG_INFINITY;
    // f64 across blocks: ~75 block sums per Qwen row, each already a short f32 sum.
    let mut s = 0f64;
    for chunk in row.chunks(BLOCK) {
        let b = &mut buf[..chunk.len()];
        T::load(chunk, b);
        let bm = fastmath::max(b);
        if bm > m {
            // Online softmax: rescale what was summed under the old max.
            s *= ((m - bm) as f64).exp();
            m = bm;
        }
        s += fastmath::sum_exp(b, m) as f64;
    }
    let lse = s.ln() as f32;
    [(row[target].to_f32() - m) - lse, m, lse]
}

/// Forward over `n` rows of `v` logits: `[n, 3]` statistics, zeros for rows whose target is
/// [`IGNORE`] (those rows are not read).
pub(crate) fn forward<T: Elem>(logits: &[T], targets: &[u32], v: usize) -> Vec<f32> {
    let mut out = vec![0f32; targets.len() * 3];
    out.par_chunks_mut(3)
        .zip(logits.par_chunks(v))
        .zip(targets.par_iter())
        .for_each(|((o, row), &t)| {
            if t != IGNORE {
                o.copy_from_slice(&row_forward(row, t as usize));
            }
        });
    out
}

/// Backward over `n` rows: grad[i, j] = g_i · (1[j = t_i − col_offset] − e^((x − max_i) − lse_i)),
/// where `gs` holds `[g_i, max_i, lse_i]` per row. `v` is the width of the logits given (a block of
/// the vocabulary when `col_offset > 0`); the statistics are those of the full row. Ignored rows
/// come back as zeros without being read.
pub(crate) fn backward<T: Elem>(
    logits: &[T],
    targets: &[u32],
    gs: &[f32],
    v: usize,
    col_offset: usize,
) -> Vec<T> {
    let mut out = vec![T::zero(); logits.len()];
    out.par_chunks_mut(v)
        .zip(logits.par_chunks(v))
        .zip(targets.par_iter().zip(gs.par_chunks(3)))
        .for_each(|((o, row), (&t, s))| {
            if t == IGNORE {
                return;
            }
            let (g, m, lse) = (s[0], s[1], s[2]);
            let mut xb = [0f32; BLOCK];
            let mut ob = [0f32; BLOCK];
            // Index of the target inside this slice of the vocabulary (≥ v when outside it).
            let local = (t as usize).wrapping_sub(col_offset);
            for (k, (oc, xc)) in o.chunks_mut(BLOCK).zip(row.chunks(BLOCK)).enumerate() {
                let len = xc.len();
                T::load(xc, &mut xb[..len]);
                fastmath::neg_scaled_softmax(&xb[..len], &mut ob[..len], m, lse, g);
                let in_block = local.wrapping_sub(k * BLOCK);
                if in_block < len {
                    ob[in_block] += g;
                }
                T::store(&ob[..len], oc);
            }
        });
    out
}
