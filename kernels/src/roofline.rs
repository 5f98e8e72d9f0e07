//! How close the fused forward gets to the card's memory bandwidth: it must read the logits once
//! (N × V × dtype size bytes), so its achieved bandwidth is those bytes over its time, compared
//! with a device-to-device copy of the same bytes on the same card (which reads and writes each
//! byte: 2 × bytes moved). CUDA only; the CPU benchmark reports no roofline.

use std::time::Instant;

use candle_core::{Device, Result, Tensor};

/// Fused forward vs a device-to-device copy of the same bytes.
#[derive(Debug, Clone, Copy)]
pub struct Roofline {
    /// Bytes the fused forward reads: N × V × dtype size (no masked rows in this measurement).
    pub bytes: usize,
    /// Mean time of one fused forward (the op alone, back to back, device synchronized).
    pub fused_forward_seconds: f64,
    /// Mean time of one device-to-device copy of `bytes`.
    pub copy_seconds: f64,
    /// bytes / fused time.
    pub fused_bytes_per_second: f64,
    /// 2 × bytes / copy time: the traffic of a copy (read + write), i.e. what the card sustains.
    pub copy_bytes_per_second: f64,
    /// fused / copy bandwidth (the goal is ≥ 0.8).
    pub ratio: f64,
}

/// Times `reps` back-to-back calls of `f` after one warm-up call, synchronizing the device before
/// starting and before reading the clock; returns the mean seconds per call.
fn mean_seconds(dev: &Device, reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    dev.synchronize()?;
    let t0 = Instant::now();
    for _ in 0..reps {
        f()?;
    }
    dev.synchronize()?;
    Ok(t0.elapsed().as_secs_f64() / reps as f64)
}

/// Measures the roofline of `token_logprobs` on `logits` [N, V] (contiguous, on a CUDA device)
/// with every row kept. None on other devices.
pub fn measure(logits: &Tensor, targets: &Tensor, reps: usize) -> Result<Option<Roofline>> {
    let dev = logits.device();
    if !dev.is_cuda() {
        return Ok(None);
    }
    let logits = logits.detach().contiguous()?;
    let bytes = logits.elem_count() * logits.dtype().size_in_bytes();
    let reps = reps.max(1);
    let fused = mean_seconds(dev, reps, || {
        crate::token_logprobs(&logits, targets, None).map(drop)
    })?;
    let copy = copy_seconds(&logits, reps)?;
    let fused_bw = bytes as f64 / fused;
    let copy_bw = 2.0 * bytes as f64 / copy;
    Ok(Some(Roofline {
        bytes,
        fused_forward_seconds: fused,
        copy_seconds: copy,
        fused_bytes_per_second: fused_bw,
        copy_bytes_per_second: copy_bw,
        ratio: fused_bw / copy_bw,
    }))
}

/// One `cuMemcpyDtoDAsync` of the tensor's bytes into a preallocated buffer, on candle's stream.
#[cfg(feature = "cuda")]
fn copy_seconds(x: &Tensor, reps: usize) -> Result<f64> {
    use candle_core::Storage;

    let (storage, layout) = x.storage_and_layout();
    let Storage::Cuda(cs) = &*storage else {
        candle_core::bail!("roofline: tensor is not on a CUDA device");
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("roofline: tensor is not contiguous");
    };
    let src = cs.as_cuda_slice::<f32>()?.slice(start..end);
    // SAFETY: the buffer is only written by the copy and never read.
    let mut dst = unsafe { cs.device.alloc::<f32>(end - start)? };
    mean_seconds(x.device(), reps, || cs.device.memcpy_dtod(&src, &mut dst))
}

#[cfg(not(feature = "cuda"))]
fn copy_seconds(_: &Tensor, _: usize) -> Result<f64> {
    candle_core::bail!("roofline: built without feature `cuda`")
}
