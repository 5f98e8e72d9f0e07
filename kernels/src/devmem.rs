//! Peak memory of one measured call, per device: the counting global allocator (plus the resident
//! set) on the CPU, the memory pool's high watermark on CUDA.
//!
//! On CUDA, candle allocates through cudarc's `CudaStream::alloc`, which uses stream-ordered
//! `cuMemAllocAsync` on every device that supports memory pools (all since Pascal), so every tensor
//! comes from the device's current memory pool. The pool tracks the bytes in use and their high
//! watermark (`CU_MEMPOOL_ATTR_USED_MEM_HIGH`), which can be reset: exactly "peak bytes held by
//! the call", without sampling. `cuMemGetInfo` would be the alternative, but it only sees the
//! instant it is called and includes other processes.

use candle_core::Device;

use crate::alloc;

/// A peak-memory bracket around one call: [`Bracket::start`] before it, [`Bracket::finish`] after.
pub(crate) struct Bracket {
    // Read only by the CUDA path.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    device: Device,
    base: usize,
    rss_base: Option<usize>,
}

/// Bytes above the baseline, and (CPU only) the resident-set growth.
pub(crate) struct Peak {
    pub bytes: Option<usize>,
    pub rss_bytes: Option<usize>,
}

/// What the figures mean, for the report.
pub(crate) fn source(device: &Device) -> &'static str {
    match device {
        Device::Cuda(_) => "CUDA memory pool high watermark (CU_MEMPOOL_ATTR_USED_MEM_HIGH)",
        _ => "counting global allocator (exspin_kernels::alloc)",
    }
}

/// Whether [`Peak::bytes`] will be measured on this device.
pub(crate) fn is_measured(device: &Device) -> bool {
    #[cfg(feature = "cuda")]
    if let Device::Cuda(d) = device {
        return cuda::pool(d).is_ok();
    }
    device.is_cpu() && alloc::is_installed()
}

impl Bracket {
    pub(crate) fn start(device: &Device) -> Self {
        #[cfg(feature = "cuda")]
        if let Device::Cuda(d) = device {
            return Bracket {
                device: device.clone(),
                base: cuda::reset_peak(d).unwrap_or(0),
                rss_base: None,
            };
        }
        alloc::reset_peak();
        Bracket {
            device: device.clone(),
            base: alloc::current_bytes(),
            rss_base: rss::reset_peak(),
        }
    }

    /// Call after the device has finished the work (synchronized).
    pub(crate) fn finish(self) -> Peak {
        #[cfg(feature = "cuda")]
        if let Device::Cuda(d) = &self.device {
            return Peak {
                bytes: cuda::peak(d).ok().map(|p| p.saturating_sub(self.base)),
                rss_bytes: None,
            };
        }
        Peak {
            bytes: Some(alloc::peak_bytes().saturating_sub(self.base)),
            rss_bytes: self
                .rss_base
                .and_then(|b| Some(rss::peak()?.saturating_sub(b))),
        }
    }
}

#[cfg(feature = "cuda")]
mod cuda {
    use candle_core::backend::BackendDevice;
    use candle_core::cuda_backend::WrapErr;
    use candle_core::{CudaDevice, Result};
    use cudarc::driver::result::mem_pool;
    use cudarc::driver::sys;

    /// The pool `cuMemAllocAsync` draws from on this device.
    pub(super) fn pool(d: &CudaDevice) -> Result<sys::CUmemoryPool> {
        let stream = d.cuda_stream();
        let ctx = stream.context();
        ctx.bind_to_thread().w()?;
        let mut pool = std::mem::MaybeUninit::<sys::CUmemoryPool>::uninit();
        // SAFETY: cu_device() is the context's live device and `pool` is a valid out-pointer.
        let status = unsafe { sys::cuDeviceGetMemPool(pool.as_mut_ptr(), ctx.cu_device()) };
        if status != sys::CUresult::CUDA_SUCCESS {
            candle_core::bail!("cuDeviceGetMemPool failed: {status:?}");
        }
        // SAFETY: written by a successful cuDeviceGetMemPool.
        Ok(unsafe { pool.assume_init() })
    }

    fn get(pool: sys::CUmemoryPool, attr: sys::CUmemPool_attribute) -> Result<usize> {
        let mut v: u64 = 0;
        // SAFETY: both used-memory attributes are cuuint64_t.
        unsafe { mem_pool::get_attribute(pool, attr, (&raw mut v).cast()) }.w()?;
        Ok(v as usize)
    }

    /// Resets the high watermark to the bytes in use now, and returns them.
    pub(super) fn reset_peak(d: &CudaDevice) -> Result<usize> {
        d.synchronize()?;
        let pool = pool(d)?;
        let mut zero: u64 = 0;
        // SAFETY: USED_MEM_HIGH is a cuuint64_t and may only be set to 0 (= reset).
        unsafe {
            mem_pool::set_attribute(
                pool,
                sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH,
                (&raw mut zero).cast(),
            )
        }
        .w()?;
        get(
            pool,
            sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_CURRENT,
        )
    }

    pub(super) fn peak(d: &CudaDevice) -> Result<usize> {
        d.synchronize()?;
        get(
            pool(d)?,
            sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH,
        )
    }
}

/// Peak resident set on Linux: writing 5 to /proc/self/clear_refs resets VmHWM to the current RSS.
mod rss {
    fn status_kb(key: &str) -> Option<usize> {
        let s = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = s.lines().find(|l| l.starts_with(key))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Resets the peak; returns the current RSS in bytes (None where unsupported).
    pub(super) fn reset_peak() -> Option<usize> {
        std::fs::write("/proc/self/clear_refs", "5").ok()?;
        Some(status_kb("VmRSS:")? * 1024)
    }

    pub(super) fn peak() -> Option<usize> {
        Some(status_kb("VmHWM:")? * 1024)
    }
}
