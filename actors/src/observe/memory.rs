//! The process's resident memory. Its peak, per round: Linux keeps the high-water mark (`VmHWM`
//! of `/proc/self/status`) and lets a process reset it (`5` into `/proc/self/clear_refs`), so
//! each round's figure is that round's own peak, not the run's so far. And memory freed but kept
//! by the allocator, handed back after the phases that leave much of it ([`release_free_memory`]).

/// The peak resident set since the process started or since the last [`reset_peak`], in bytes;
/// None where `/proc` does not say (not Linux).
pub fn peak_rss_bytes() -> Option<u64> {
    status_bytes("VmHWM:")
}

/// The resident set now, in bytes; None where `/proc` does not say.
pub fn rss_bytes() -> Option<u64> {
    status_bytes("VmRSS:")
}

fn status_bytes(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Hands the pages the allocator holds free back to the system and returns by how much the
/// resident set fell (None where that cannot be done or measured).
///
/// Why: glibc keeps freed heap memory in the arena of the thread that freed it, for that thread
/// to reuse. A dev pass or a weight load runs on a blocking-pool thread, and what it frees stays
/// in that thread's arena, out of reach of the learner's and the opponent's threads. On the 0.5B
/// model on CPU that left 16.6 GiB resident where 6.2 GiB was in use after a dev pass, and the
/// process peaked at 19.8 GiB of the machine's 24 (BENCHMARKS.md, "the second run").
pub fn release_free_memory() -> Option<u64> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let before = rss_bytes()?;
        // SAFETY: malloc_trim takes each arena's lock; it only returns free pages.
        unsafe {
            libc::malloc_trim(0);
        }
        Some(before.saturating_sub(rss_bytes()?))
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    None
}

/// [`release_free_memory`] after `what`, with a log line when it gave back enough to matter.
pub fn release_after(what: &str) {
    match release_free_memory() {
        Some(freed) if freed >= 256 << 20 => tracing::info!(
            "after {what}: {:.1} GiB of freed memory handed back to the system (resident now {:.1} GiB)",
            freed as f64 / (1u64 << 30) as f64,
            rss_bytes().unwrap_or(0) as f64 / (1u64 << 30) as f64
        ),
        Some(freed) => tracing::debug!("after {what}: {freed} bytes handed back"),
        None => {}
    }
}

/// Starts a new peak from the current resident set. False where the kernel refused (the figure
/// then stays the peak since the last reset that worked, an upper bound).
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 512 MiB in 64 KiB blocks (below glibc's mmap threshold, so they live in the heap), freed
    /// behind a block that stays: the allocator keeps them resident until they are released.
    #[test]
    fn freed_heap_memory_goes_back_to_the_system_when_released() {
        let Some(start) = rss_bytes() else {
            eprintln!("no /proc/self/status here: nothing to measure");
            return;
        };
        const BLOCK: usize = 64 << 10;
        const TOTAL: usize = 512 << 20;
        let blocks: Vec<Vec<u8>> = (0..TOTAL / BLOCK).map(|i| vec![i as u8; BLOCK]).collect();
        let keep = std::hint::black_box(vec![1u8; BLOCK]);
        let touched = rss_bytes().unwrap();
        assert!(
            touched >= start + (TOTAL as u64) / 2,
            "{touched} resident after touching 512 MiB (from {start})"
        );
        drop(std::hint::black_box(blocks));
        let kept = rss_bytes().unwrap();
        let Some(released) = release_free_memory() else {
            eprintln!("not glibc: no allocator to ask");
            return;
        };
        // Other tests of this binary allocate meanwhile, so half is asked, not all.
        assert!(
            released >= (TOTAL as u64) / 2,
            "released {released} bytes: resident {touched} touched, {kept} freed, {} after",
            rss_bytes().unwrap()
        );
        drop(keep);
    }

    #[test]
    fn the_peak_covers_memory_touched_since_the_reset() {
        let Some(before) = peak_rss_bytes() else {
            eprintln!("no /proc/self/status here: nothing to check");
            return;
        };
        assert!(before > 0);
        // 64 MiB touched page by page raises the high-water mark by about that much.
        let block = std::hint::black_box(vec![1u8; 64 << 20]);
        let after = peak_rss_bytes().unwrap();
        assert!(
            after >= before.max(60 << 20),
            "peak {after} after touching 64 MiB (before: {before})"
        );
        drop(block);
        if reset_peak() {
            // The block is freed: the new peak is the resident set now, below the old one.
            assert!(
                peak_rss_bytes().unwrap() < after,
                "the reset kept the old peak"
            );
        }
    }
}
