//! Reading candle's CPU storage as plain slices, for the fused ops' loops.

use candle_core::{CpuStorage, Layout, Result, bail};

/// The f32 elements of a contiguous CPU tensor; `op` names the caller in the error.
pub(crate) fn contiguous_f32<'a>(op: &str, s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    match s {
        CpuStorage::F32(v) if l.is_contiguous() => {
            Ok(&v[l.start_offset()..][..l.shape().elem_count()])
        }
        _ => bail!("{op}: expected a contiguous f32 tensor"),
    }
}

/// Whether an operand of a custom op wants a gradient (a Var, or computed from one): the
/// backward passes skip the others' GEMMs.
pub(crate) fn needs_grad(t: &candle_core::Tensor) -> bool {
    t.is_variable() || t.track_op()
}
