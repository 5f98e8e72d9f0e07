//! A counting global allocator, for peak-memory figures in benchmarks.
//!
//! Install it in a binary with
//! `#[global_allocator] static ALLOC: exspin_kernels::alloc::CountingAllocator = exspin_kernels::alloc::CountingAllocator;`
//! then bracket a measurement with [`reset_peak`] and [`peak_bytes`]. It counts bytes requested
//! from the system allocator (calloc'd pages not yet touched included), which is what decides
//! whether a [tokens × vocab] tensor fits. Two relaxed atomics per call; not for hot production use.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// The system allocator plus live-byte and peak counters.
pub struct CountingAllocator;

fn add(bytes: usize) {
    let now = CURRENT.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            add(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged; calloc keeps large zeroed buffers lazy, as without us.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            add(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc`/`realloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract is the one the system allocator needs.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
            add(new_size);
        }
        p
    }
}

impl CountingAllocator {
    /// Marks the allocator as installed; call once from the binary that installed it, so figures
    /// read as "not measured" elsewhere instead of as zeros.
    pub fn mark_installed() {
        INSTALLED.store(true, Ordering::Relaxed);
    }
}

/// Whether a binary declared [`CountingAllocator`] installed (see [`CountingAllocator::mark_installed`]).
pub fn is_installed() -> bool {
    INSTALLED.load(Ordering::Relaxed) && CURRENT.load(Ordering::Relaxed) > 0
}

/// Bytes live now.
pub fn current_bytes() -> usize {
    CURRENT.load(Ordering::Relaxed)
}

/// Highest live byte count since the last [`reset_peak`].
pub fn peak_bytes() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// Starts a new peak measurement at the current live byte count.
pub fn reset_peak() {
    PEAK.store(CURRENT.load(Ordering::Relaxed), Ordering::Relaxed);
}
