//! glibc's allocator, tuned for a training loop.
//!
//! A training step allocates and frees the same large tensors (activations, gradients, logits)
//! every time. By default glibc serves blocks over its (adaptive, at most 32 MiB) mmap threshold
//! with fresh `mmap`s and unmaps them on free, and trims the heap top above 128 KiB, so the next
//! step faults every page in again and the kernel zeroes it: `perf` put ~15% of a CPU training
//! step in page faults (BENCHMARKS.md). Here large blocks come from the heap and freed memory stays
//! in it for the next step. The cost is that the process keeps its peak heap mapped, which a
//! training job reaches again every step anyway.
//!
//! Left alone when the user tunes malloc through the environment (`MALLOC_*_` variables or
//! `GLIBC_TUNABLES`) or sets `EXSPIN_SYSTEM_MALLOC=1`.

/// Call first thing in `main`, before any thread starts.
pub fn keep_freed_memory() {
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
        libc::mallopt(libc::M_MMAP_MAX, 0);
        // -1 disables trimming (mallopt(3)).
        libc::mallopt(libc::M_TRIM_THRESHOLD, -1);
        libc::mallopt(libc::M_TOP_PAD, 256 << 20);
    }
}
