//! CUDA path: the kernels in `logprob.cu`, compiled once per process with NVRTC and launched on
//! candle's CUDA storage (same stream as candle's own kernels, so no extra synchronization).
//! f32 and bf16 logits; one block of [`THREADS`] threads per row.

use std::sync::OnceLock;

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::{CudaStorageSlice, WrapErr};
use candle_core::{CudaStorage, Layout, Result, Shape, bail};
use cudarc::driver::{CudaSlice, CudaView, LaunchConfig, PushKernelArg};

const SOURCE: &str = include_str!("logprob.cu");
const MODULE: &str = "exspin_kernels_logprob";
/// Threads per row: 8 warps keep enough loads in flight per SM without starving small N.
const THREADS: u32 = 256;

/// The PTX, compiled on first use (an NVRTC error is kept and reported on every call).
fn ptx() -> Result<&'static str> {
    static PTX: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    PTX.get_or_init(|| {
        cudarc::nvrtc::compile_ptx(SOURCE)
            .map(|p| p.to_src())
            .map_err(|e| e.to_string())
    })
    .as_deref()
    .map_err(|e| candle_core::Error::Cuda(format!("NVRTC failed on logprob.cu: {e}").into()))
}

fn offsets(l: &Layout) -> Result<(usize, usize)> {
    match l.contiguous_offsets() {
        Some(o) => Ok(o),
        None => bail!("fused log-prob kernels need contiguous inputs"),
    }
}

fn rows_config(n: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (n as u32, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

fn u32_of(x: usize, what: &str) -> Result<u32> {
    u32::try_from(x).map_err(|_| candle_core::Error::Msg(format!("{what} {x} exceeds u32")))
}

/// Forward: logits [N, V] (f32 or bf16), targets [N] u32 → [N, 3] f32 statistics.
pub(crate) fn forward(
    s1: &CudaStorage,
    l1: &Layout,
    s2: &CudaStorage,
    l2: &Layout,
) -> Result<(CudaStorage, Shape)> {
    let dev = &s1.device;
    let (n, v) = l1.shape().dims2()?;
    let (t0, t1) = offsets(l2)?;
    if t1 - t0 != n {
        bail!("{n} rows of logits but {} targets", t1 - t0);
    }
    let mut out = dev.alloc_zeros::<f32>(n * 3)?;
    if n > 0 {
        let (x0, x1) = offsets(l1)?;
        let targets = s2.as_cuda_slice::<u32>()?.slice(t0..t1);
        let v = u32_of(v, "vocabulary size")?;
        let name = match &s1.slice {
            CudaStorageSlice::F32(_) => "token_logprob_fwd_f32",
            CudaStorageSlice::BF16(_) => "token_logprob_fwd_bf16",
            _ => bail!(
                "token-logprob (cuda): logits must be f32 or bf16, got {:?}",
                s1.dtype()
            ),
        };
        let func = dev.get_or_load_custom_func(name, MODULE, ptx()?)?;
        // Each arm makes its view first and its builder after, so the view outlives the launch.
        match &s1.slice {
            CudaStorageSlice::F32(x) => {
                let x = x.slice(x0..x1);
                let mut b = func.builder();
                b.arg(&x).arg(&targets).arg(&mut out).arg(&v);
                // SAFETY: argument order and types match `token_logprob_fwd_f32` in logprob.cu.
                unsafe { b.launch(rows_config(n)) }.w()?;
            }
            CudaStorageSlice::BF16(x) => {
                let x = x.slice(x0..x1);
                let mut b = func.builder();
                b.arg(&x).arg(&targets).arg(&mut out).arg(&v);
                // SAFETY: argument order and types match `token_logprob_fwd_bf16` in logprob.cu.
                unsafe { b.launch(rows_config(n)) }.w()?;
            }
            _ => unreachable!("dtype checked above"),
        }
    }
    Ok((
        CudaStorage::wrap_cuda_slice(out, dev.clone()),
        Shape::from((n, 3)),
    ))
}

fn launch_bwd<T>(
    s1: &CudaStorage,
    x: &CudaSlice<T>,
    (x0, x1): (usize, usize),
    targets: &CudaView<'_, u32>,
    gs: &CudaView<'_, f32>,
    (n, v, col_offset): (usize, u32, u32),
    name: &str,
) -> Result<CudaSlice<T>>
where
    T: cudarc::driver::DeviceRepr,
{
    let dev = &s1.device;
    // SAFETY: the kernel writes every element, ignored rows included.
    let mut out = unsafe { dev.alloc::<T>(x1 - x0)? };
    if n > 0 {
        let func = dev.get_or_load_custom_func(name, MODULE, ptx()?)?;
        let x = x.slice(x0..x1);
        let mut b = func.builder();
        b.arg(&x)
            .arg(targets)
            .arg(gs)
            .arg(&mut out)
            .arg(&v)
            .arg(&col_offset);
        // SAFETY: argument order and types match `token_logprob_bwd_*` in logprob.cu.
        unsafe { b.launch(rows_config(n)) }.w()?;
    }
    Ok(out)
}

/// Backward: logits [N, V], targets [N], `[g, max, lse]` [N, 3] → gradient [N, V] in the logits'
/// dtype.
pub(crate) fn backward(
    s1: &CudaStorage,
    l1: &Layout,
    s2: &CudaStorage,
    l2: &Layout,
    s3: &CudaStorage,
    l3: &Layout,
    col_offset: usize,
) -> Result<(CudaStorage, Shape)> {
    let dev = s1.device.clone();
    let (n, v) = l1.shape().dims2()?;
    let (t0, t1) = offsets(l2)?;
    let (g0, g1) = offsets(l3)?;
    if t1 - t0 != n || g1 - g0 != 3 * n {
        bail!(
            "token-logprob-grad (cuda): shapes {:?} {:?} {:?}",
            l1.dims(),
            l2.dims(),
            l3.dims()
        );
    }
    let targets = s2.as_cuda_slice::<u32>()?.slice(t0..t1);
    let gs = s3.as_cuda_slice::<f32>()?.slice(g0..g1);
    let x_range = offsets(l1)?;
    let dims = (
        n,
        u32_of(v, "vocabulary size")?,
        u32_of(col_offset, "column offset")?,
    );
    let storage = match &s1.slice {
        CudaStorageSlice::F32(x) => {
            let out = launch_bwd(s1, x, x_range, &targets, &gs, dims, "token_logprob_bwd_f32")?;
            CudaStorage::wrap_cuda_slice(out, dev)
        }
        CudaStorageSlice::BF16(x) => {
            let out = launch_bwd(
                s1,
                x,
                x_range,
                &targets,
                &gs,
                dims,
                "token_logprob_bwd_bf16",
            )?;
            CudaStorage::wrap_cuda_slice(out, dev)
        }
        _ => bail!(
            "token-logprob-grad (cuda): logits must be f32 or bf16, got {:?}",
            s1.dtype()
        ),
    };
    Ok((storage, l1.shape().clone()))
}
