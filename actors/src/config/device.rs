//! Where the model runs: the device (`cpu`, `cuda`, `cuda:N`) and the weight dtype (`f32`, `bf16`),
//! shared by the job config (`[model] device` / `dtype`, the runtime's real model) and the
//! commands' `--device` / `--dtype` (`exspin bench train/generate/logprob`).
//!
//! A CUDA device needs a binary built with `--features cuda`; asking for one without it fails with
//! that fix spelled out, and a build with it that finds no GPU fails when the device is opened
//! (never a silent fall back to the CPU).

use std::str::FromStr;

use anyhow::Context as _;
use candle_core::{DType, Device};
use serde::{Deserialize, Serialize};

/// Whether this binary was built with the `cuda` feature.
pub const CUDA_BUILT: bool = cfg!(feature = "cuda");

/// The fix for a CUDA request in a CPU-only build, in words.
pub const CUDA_FIX: &str = "this exspin was built without CUDA support; rebuild with \
`cargo build --release --features cuda` (needs nvcc)";

/// Where a model runs, as the job config (`model.device`) and `--device` spell it: `cpu`, `cuda`
/// (GPU 0) or `cuda:N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceSpec {
    #[default]
    Cpu,
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a device; use \"cpu\", \"cuda\" or \"cuda:N\"");
        match s {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse::<usize>().ok())
                .map(DeviceSpec::Cuda)
                .ok_or_else(bad),
        }
    }
}

impl TryFrom<String> for DeviceSpec {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<DeviceSpec> for String {
    fn from(d: DeviceSpec) -> String {
        d.to_string()
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(0) => f.write_str("cuda"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl DeviceSpec {
    /// Whether this binary can open it: a CUDA device needs the `cuda` feature. `what` names the
    /// setting in the error (`--device`, `model.device`).
    pub fn check_built(&self, what: &str) -> anyhow::Result<()> {
        if matches!(self, DeviceSpec::Cuda(_)) && !CUDA_BUILT {
            anyhow::bail!("{what} = \"{self}\": {CUDA_FIX}, or use {what} = \"cpu\"");
        }
        Ok(())
    }

    /// Opens it (never falls back to the CPU).
    pub fn open(&self, what: &str) -> anyhow::Result<Device> {
        self.check_built(what)?;
        match *self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(ordinal) => {
                Device::new_cuda(ordinal).with_context(|| format!("opening CUDA device {ordinal}"))
            }
        }
    }
}

/// The dtype of a model's weights (`model.dtype`, `--dtype`): log-probs and losses stay f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum WeightDType {
    #[default]
    F32,
    Bf16,
}

impl WeightDType {
    pub fn dtype(self) -> DType {
        match self {
            WeightDType::F32 => DType::F32,
            WeightDType::Bf16 => DType::BF16,
        }
    }
}
