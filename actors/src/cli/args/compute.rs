//! What every model-running command shares: `--threads`, `--device`, `--dtype`, and turning an
//! out-of-memory failure into advice.

use candle_core::{DType, Device};
use exspin_actors::config::{DeviceSpec, WeightDType};

/// `--threads N`: worker threads for candle's CPU kernels and every rayon loop.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ThreadsArgs {
    /// Worker threads for the CPU kernels (default: all cores, or $RAYON_NUM_THREADS).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

impl ThreadsArgs {
    /// Size the global rayon pool and candle's matmul threads. Call before any tensor work.
    pub fn apply(&self) -> anyhow::Result<usize> {
        set_threads(self.threads)
    }
}

/// `--device`, `--dtype` and `--threads`.
#[derive(clap::Args, Debug, Clone)]
pub struct ComputeArgs {
    /// cpu or cuda (cuda[:N] picks a GPU; needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Weight dtype: f32 or bf16 (bf16 is meant for CUDA; on the CPU it is slow).
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: WeightDType,
    #[command(flatten)]
    pub threads: ThreadsArgs,
}

impl ComputeArgs {
    /// Apply `--threads`, open the device, parse the dtype.
    pub fn open(&self) -> anyhow::Result<(Device, DType, usize)> {
        let threads = self.threads.apply()?;
        let device = self.device.open("--device")?;
        let dtype = self.dtype.dtype();
        Ok((device, dtype, threads))
    }
}

pub fn set_threads(threads: Option<usize>) -> anyhow::Result<usize> {
    if let Some(n) = threads {
        anyhow::ensure!(n > 0, "--threads must be at least 1");
        // candle's CPU matmul reads RAYON_NUM_THREADS on every call; the rest of candle and the
        // kernels run on rayon's global pool. Set both before any work starts.
        // SAFETY: called at the start of a command, before this process starts other threads.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", n.to_string()) };
        // A second call (tests calling `run` twice in one process) finds the pool built: fine.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global();
    }
    Ok(rayon::current_num_threads())
}

/// A dtype's name in reports.
pub fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::F32 => "f32",
        DType::BF16 => "bf16",
        DType::F16 => "f16",
        _ => "other",
    }
}

/// A device's name in reports.
pub fn device_name(d: &Device) -> String {
    match d {
        Device::Cpu => "cpu".into(),
        Device::Cuda(_) => "cuda".into(),
        Device::Metal(_) => "metal".into(),
    }
}

/// Whether an error chain is the device running out of memory.
pub fn is_oom(err: &anyhow::Error) -> bool {
    let text = format!("{err:#}").to_lowercase();
    text.contains("out of memory") || text.contains("out_of_memory") || text.contains("oom")
}

/// Rewrap an out-of-memory failure with what to change; other errors pass unchanged.
pub fn explain_oom(err: anyhow::Error, what: &str) -> anyhow::Error {
    if is_oom(&err) {
        err.context(format!(
            "out of device memory during {what}: lower --batch or --seq, or use --dtype bf16"
        ))
    } else {
        err
    }
}

/// Peak heap bytes since the last reset, when the counting allocator is installed (CPU only:
/// device memory is not seen by it).
pub fn peak_heap_bytes(device: &Device) -> Option<usize> {
    (device.is_cpu() && exspin_kernels::alloc::is_installed())
        .then(exspin_kernels::alloc::peak_bytes)
}
