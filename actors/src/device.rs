//! Where the model runs: the device (`cpu`, `cuda`, `cuda:N`) and the weight dtype (`f32`, `bf16`),
//! shared by the job config (`[model] device` / `dtype`, the runtime's real model) and the
//! commands' `--device` / `--dtype` (`exspin bench train/generate/logprob`).
//!
//! A CUDA device needs a binary built with `--features cuda`; asking for one without it fails with
//! that fix spelled out, and a build with it that finds no GPU fails when the device is opened
//! (never a silent fall back to the CPU).

use anyhow::Context as _;
use candle_core::{DType, Device};

/// Whether this binary was built with the `cuda` feature.
pub const CUDA_BUILT: bool = cfg!(feature = "cuda");

/// The fix for a CUDA request in a CPU-only build, in words.
pub const CUDA_FIX: &str = "this exspin was built without CUDA support; rebuild with \
`cargo build --release --features cuda` (needs nvcc)";

/// The ordinal of `cpu` (None), `cuda` (0) or `cuda:N` (N); `what` names the setting in errors
/// (`--device`, `model.device`).
pub fn parse_device(s: &str, what: &str) -> anyhow::Result<Option<usize>> {
    if s == "cpu" {
        return Ok(None);
    }
    let bad = || format!("{what} = {s:?} is unknown; use \"cpu\", \"cuda\" or \"cuda:N\"");
    match s.strip_prefix("cuda") {
        Some("") => Ok(Some(0)),
        Some(rest) => rest
            .strip_prefix(':')
            .and_then(|n| n.parse::<usize>().ok())
            .map(Some)
            .with_context(bad),
        None => anyhow::bail!(bad()),
    }
}

/// Checks a device name without opening it: syntax, and CUDA support in this build.
pub fn check_device(s: &str, what: &str) -> anyhow::Result<()> {
    if parse_device(s, what)?.is_some() && !CUDA_BUILT {
        anyhow::bail!("{what} = {s:?}: {CUDA_FIX}, or use {what} = \"cpu\"");
    }
    Ok(())
}

/// Opens `cpu`, `cuda` or `cuda:N`.
pub fn open_device_as(s: &str, what: &str) -> anyhow::Result<Device> {
    check_device(s, what)?;
    match parse_device(s, what)? {
        None => Ok(Device::Cpu),
        Some(ordinal) => {
            Device::new_cuda(ordinal).with_context(|| format!("opening CUDA device {ordinal}"))
        }
    }
}

/// `f32` or `bf16`.
pub fn parse_dtype_as(s: &str, what: &str) -> anyhow::Result<DType> {
    match s {
        "f32" => Ok(DType::F32),
        "bf16" => Ok(DType::BF16),
        other => anyhow::bail!("{what} = {other:?} is unknown; use \"f32\" or \"bf16\""),
    }
}

pub fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::F32 => "f32",
        DType::BF16 => "bf16",
        DType::F16 => "f16",
        _ => "other",
    }
}

pub fn device_name(d: &Device) -> String {
    match d {
        Device::Cpu => "cpu".into(),
        Device::Cuda(_) => "cuda".into(),
        Device::Metal(_) => "metal".into(),
    }
}

/// An opened device and the dtype of the weights on it.
#[derive(Debug, Clone)]
pub struct Compute {
    pub device: Device,
    pub dtype: DType,
}

impl Compute {
    pub fn cpu() -> Compute {
        Compute {
            device: Device::Cpu,
            dtype: DType::F32,
        }
    }
}

impl Compute {
    /// Opens the job config's `model.device` with `model.dtype` (see `config.rs` for what
    /// validation already checked); a CUDA device gets `seed` for its random initialisers.
    pub fn from_config(device: &str, dtype: &str, seed: u64) -> anyhow::Result<Compute> {
        let dtype = parse_dtype_as(dtype, "model.dtype")?;
        let device = open_device_as(device, "model.device")?;
        if !device.is_cpu() {
            device.set_seed(seed)?;
        }
        Ok(Compute { device, dtype })
    }
}
