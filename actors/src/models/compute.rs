//! An opened device and the dtype of the weights on it: what every model seam runs on, opened
//! from the job config's `model.device` / `model.dtype` (`config::device`).

use candle_core::{DType, Device};

use crate::config::device::{DeviceSpec, WeightDType};

/// An opened device and the dtype of the weights on it.
#[derive(Debug, Clone)]
pub struct Compute {
    pub device: Device,
    pub dtype: DType,
}

impl Compute {
    /// Opens the job config's `model.device` with `model.dtype`; a CUDA device gets `seed` for
    /// its random initialisers.
    pub fn from_config(
        device: DeviceSpec,
        dtype: WeightDType,
        seed: u64,
    ) -> anyhow::Result<Compute> {
        let device = device.open("model.device")?;
        if !device.is_cpu() {
            device.set_seed(seed)?;
        }
        Ok(Compute {
            device,
            dtype: dtype.dtype(),
        })
    }
}
