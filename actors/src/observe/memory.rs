//! The process's peak resident memory, per round: Linux keeps the high-water mark (`VmHWM` of
//! `/proc/self/status`) and lets a process reset it (`5` into `/proc/self/clear_refs`), so each
//! round's figure is that round's own peak, not the run's so far.

/// The peak resident set since the process started or since the last [`reset_peak`], in bytes;
/// None where `/proc` does not say (not Linux).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Starts a new peak from the current resident set. False where the kernel refused (the figure
/// then stays the peak since the last reset that worked, an upper bound).
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

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
