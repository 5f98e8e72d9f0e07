//! Subnormal f32s flushed to zero on the threads that compute (x86's FTZ and DAZ, aarch64's FZ).
//!
//! Why: a backward through a long prompt carries gradients that shrink towards f32's smallest
//! normal (1.2e-38) and below at positions far from the answer. An x86 core runs every multiply-
//! add with a subnormal operand or result in microcode, around a hundred times slower, and the
//! GEMM microkernels of the learner's step spent most of their time there on Spider's longer
//! prompts (BENCHMARKS.md, "Subnormal floats"). Flushed, such values become zero: a training
//! step cannot tell, since a gradient entry below 1e-38 moves no f32 weight. PyTorch offers the
//! same switch (`torch.set_flush_denormal(True)`).
//!
//! The mode is a per-thread register, and POSIX threads start with their creator's: `exspin`
//! sets it first thing in `main`, so every thread it starts (rayon's pool, candle's, tokio's, the
//! executors) inherits it. [`set_flush_everywhere`] switches the calling thread and rayon's global
//! pool at once (for a same-process comparison); threads that candle keeps to itself keep theirs.
//!
//! Rust's float semantics assume the default mode, so code compiled to fold subnormal arithmetic
//! at build time may disagree with the same arithmetic at run time; nothing here depends on the
//! exact value of a subnormal.

/// x86 MXCSR: flush-to-zero (results) and denormals-are-zero (operands).
#[cfg(target_arch = "x86_64")]
const MXCSR_FTZ_DAZ: u32 = (1 << 15) | (1 << 6);

/// aarch64 FPCR: flush-to-zero.
#[cfg(target_arch = "aarch64")]
const FPCR_FZ: u64 = 1 << 24;

/// Flushes subnormals to zero on this thread (`true`), or restores IEEE behaviour (`false`).
pub fn set_flush(on: bool) {
    #[cfg(target_arch = "x86_64")]
    {
        let csr = if on {
            mxcsr() | MXCSR_FTZ_DAZ
        } else {
            mxcsr() & !MXCSR_FTZ_DAZ
        };
        // SAFETY: loads a value read from MXCSR with only the FTZ/DAZ bits changed; no memory
        // but the local is touched.
        unsafe {
            std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack, readonly, preserves_flags));
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        let mut fpcr: u64;
        // SAFETY: reads and writes FPCR with only the FZ bit changed.
        unsafe {
            std::arch::asm!("mrs {}, fpcr", out(reg) fpcr, options(nomem, nostack, preserves_flags));
            fpcr = if on { fpcr | FPCR_FZ } else { fpcr & !FPCR_FZ };
            std::arch::asm!("msr fpcr, {}", in(reg) fpcr, options(nomem, nostack, preserves_flags));
        }
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = on;
}

/// Whether this thread flushes subnormals to zero (always false where [`set_flush`] cannot).
pub fn is_flushing() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        mxcsr() & MXCSR_FTZ_DAZ == MXCSR_FTZ_DAZ
    }
    #[cfg(target_arch = "aarch64")]
    {
        let fpcr: u64;
        // SAFETY: reads FPCR.
        unsafe {
            std::arch::asm!("mrs {}, fpcr", out(reg) fpcr, options(nomem, nostack, preserves_flags))
        };
        fpcr & FPCR_FZ != 0
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    false
}

/// [`set_flush`] on the calling thread and on every thread of rayon's global pool, where candle's
/// matrix products run.
pub fn set_flush_everywhere(on: bool) {
    set_flush(on);
    rayon::broadcast(|_| set_flush(on));
}

/// Whether the calling thread and every thread of rayon's global pool flush.
pub fn is_flushing_everywhere() -> bool {
    is_flushing() && rayon::broadcast(|_| is_flushing()).into_iter().all(|f| f)
}

#[cfg(target_arch = "x86_64")]
fn mxcsr() -> u32 {
    let mut csr = 0u32;
    // SAFETY: stores MXCSR into the local.
    unsafe {
        std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack, preserves_flags));
    }
    csr
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hint::black_box;

    /// Runs on a thread of its own: the mode is per thread, so the other tests never see it.
    fn on_own_thread<T: Send>(f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| s.spawn(f).join().unwrap())
    }

    #[test]
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    fn a_subnormal_result_is_zero_only_when_flushing() {
        on_own_thread(|| {
            set_flush(false);
            assert!(!is_flushing());
            let tiny = black_box(1e-30f32) * black_box(1e-10f32);
            assert!(
                tiny > 0.0 && !tiny.is_normal(),
                "IEEE keeps the subnormal {tiny:e}"
            );
            set_flush(true);
            assert!(is_flushing());
            assert_eq!(black_box(1e-30f32) * black_box(1e-10f32), 0.0);
            set_flush(false);
            assert!(!is_flushing());
            // Normal arithmetic is untouched either way.
            assert_eq!(black_box(1.5f32) * black_box(2.0f32), 3.0);
        });
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn a_subnormal_operand_reads_as_zero_when_flushing() {
        on_own_thread(|| {
            let sub = black_box(f32::from_bits(1)); // the smallest subnormal
            set_flush(false);
            assert!(black_box(sub) * black_box(2.0f32) > 0.0);
            set_flush(true);
            // DAZ: the operand itself is taken as zero.
            assert_eq!(black_box(sub) + black_box(0.0f32), 0.0);
            set_flush(false);
        });
    }

    #[test]
    fn a_new_thread_starts_with_its_creators_mode() {
        on_own_thread(|| {
            set_flush(true);
            let child = std::thread::spawn(is_flushing).join().unwrap();
            set_flush(false);
            let child_off = std::thread::spawn(is_flushing).join().unwrap();
            if cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
                assert!(child, "a thread started while flushing flushes");
            }
            assert!(!child_off);
        });
    }
}
