//! glibc's allocator, tuned for a training loop.
//!
//! A training step allocates and frees the same tensors every time. By default glibc serves every
//! block above its adaptive mmap threshold (128 KiB at first) with a fresh `mmap`, unmaps it on
//! free, and trims the heap top above 128 KiB, so the next step faults those pages in again and
//! the kernel zeroes them: `perf` put ~15% of a CPU training step in page faults (BENCHMARKS.md).
//! Here blocks up to 32 MiB (glibc's maximum threshold) come from the heap and freed memory stays
//! there up to 1 GiB, so activations and per-layer gradients are reused without faults.
//!
//! Why not more (no mmap at all, no trimming, which measured a few percent faster on the
//! benchmark): memory freed by one thread's arena is then never returned to the system, and
//! another thread cannot reuse it. In a self-play run the evaluator, generators and trainer work
//! on different threads, and a Spider run of the 0.5B model was killed for memory that way (the
//! evaluator's peak stayed mapped while the trainer's thread allocated its own). Blocks over
//! 32 MiB (logits, embedding gradients) are still mapped per use and returned on free.
//!
//! Left alone when the user tunes malloc through the environment (`MALLOC_*_` variables or
//! `GLIBC_TUNABLES`) or sets `EXSPIN_SYSTEM_MALLOC`.

/// Call first thing in `main`, before any thread starts.
pub fn tune_for_training() {
    let user_tuned = std::env::vars_os().any(|(k, _)| {
        let k = k.to_string_lossy();
        (k.starts_with("MALLOC_") && k.ends_with('_'))
            || k == "GLIBC_TUNABLES"
            || k == "EXSPIN_SYSTEM_MALLOC"
    });
    if user_tuned {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before other threads exist.
    unsafe {
        // Setting the threshold also turns off glibc's adaptive threshold.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}
