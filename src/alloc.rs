//! Process-wide allocator tuning for inference.

/// Keeps large allocations on the heap and freed memory in the process.
///
/// PERF: an encoder forward allocates and frees tens of activations of 4-70 MB each. glibc
/// serves anything above its mmap threshold (at most 32 MB, adjusted dynamically) with a fresh
/// `mmap` and returns it with `munmap` on free, so every such tensor is page-faulted and zeroed
/// by the kernel again: about 10% of a MobileSAM encode. With a 1 GiB threshold and trim
/// threshold the freed blocks are reused by the next layer. Peak resident memory is unchanged
/// (the same tensors are alive at the peak); memory freed after a forward stays mapped for the
/// next image. Call once at start-up, before threads start; a no-op off glibc.
pub fn tune_for_inference() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const ONE_GIB: libc::c_int = 1 << 30;
        // SAFETY: mallopt only changes allocator parameters; called before other threads run.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, ONE_GIB);
            libc::mallopt(libc::M_TRIM_THRESHOLD, ONE_GIB);
        }
    }
}

/// The system allocator, with every block of 64 KiB or more aligned to a 64-byte cache line
/// (smaller ones as the system gives them). The binary installs it as the global allocator.
///
/// PERF: the AMX products ([`crate::model::ops::amx`]) accumulate straight into their output
/// rows only when those start on a cache line (a tile store across two lines is several
/// times slower); with the system's 16-byte alignment every layer's output went through a
/// padded buffer and a copy (Hiera-T's encoder 805-819 → 759-799 ms, click 12.1-13.3 →
/// 11.1-12.7 ms in three A/B pairs, session 33; peak resident memory 623 → 638 MiB).
/// A large block is a system block one line longer, used from its first line boundary after
/// a word that records the distance: glibc's own aligned allocation (`posix_memalign`) left
/// its blocks' heads and tails as fragments, and the peak resident memory of Hiera-T's bench
/// grew from 623 to 931 MiB.
pub struct LineAligned;

/// Blocks from this size up are line-aligned.
const LARGE: usize = 1 << 16;
/// A cache line.
const LINE: usize = 64;

/// Whether `layout`'s block is one of the line-aligned ones.
fn is_large(layout: std::alloc::Layout) -> bool {
    layout.size() >= LARGE && layout.align() <= LINE
}

/// The system layout behind a large block of `size`: one line longer, the system's alignment.
fn system_layout(size: usize) -> Option<std::alloc::Layout> {
    std::alloc::Layout::from_size_align(size.checked_add(LINE)?, 16).ok()
}

/// The first line boundary after the start of the system block `raw` (16-byte aligned), with
/// the distance recorded in the word before it; null stays null.
///
/// # Safety
/// `raw` is null or a block of at least `LINE` + the caller's size bytes.
unsafe fn place(raw: *mut u8) -> *mut u8 {
    if raw.is_null() {
        return raw;
    }
    // 16, 32, 48 or 64 bytes in, for the system's 16-byte alignment.
    let shift = LINE - raw as usize % LINE;
    debug_assert!(shift >= 16 && shift.is_multiple_of(16));
    // SAFETY: `shift` ≤ LINE lies within the block, and so does the word before the aligned
    // pointer (`shift` ≥ 16); it is 8-aligned.
    unsafe {
        let p = raw.add(shift);
        p.cast::<usize>().sub(1).write(shift);
        p
    }
}

/// The system block of a large block `p` made by [`place`].
///
/// # Safety
/// `p` came from [`place`].
unsafe fn system_block(p: *mut u8) -> *mut u8 {
    // SAFETY: `place` wrote the distance in the word before `p`.
    unsafe { p.sub(p.cast::<usize>().sub(1).read()) }
}

// SAFETY: small blocks go to `System` unchanged; a large block is a `System` block of
// `system_layout(size)` (the same for its allocation and release, from the size alone), used
// from an aligned point inside it that leaves the caller's size before its end.
unsafe impl std::alloc::GlobalAlloc for LineAligned {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        match (is_large(layout), system_layout(layout.size())) {
            // SAFETY: a valid non-zero layout; the block is `LINE` longer than asked.
            (true, Some(l)) => unsafe { place(std::alloc::System.alloc(l)) },
            (true, None) => std::ptr::null_mut(),
            // SAFETY: forwarded.
            (false, _) => unsafe { std::alloc::System.alloc(layout) },
        }
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        match (is_large(layout), system_layout(layout.size())) {
            // SAFETY: as `alloc`.
            (true, Some(l)) => unsafe { place(std::alloc::System.alloc_zeroed(l)) },
            (true, None) => std::ptr::null_mut(),
            // SAFETY: forwarded.
            (false, _) => unsafe { std::alloc::System.alloc_zeroed(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        match (is_large(layout), system_layout(layout.size())) {
            // SAFETY: `ptr` is a large block of this size, from `place` in a system block of
            // this layout.
            (true, Some(l)) => unsafe { std::alloc::System.dealloc(system_block(ptr), l) },
            (true, None) => {}
            // SAFETY: forwarded.
            (false, _) => unsafe { std::alloc::System.dealloc(ptr, layout) },
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size` with `layout.align()` is a valid layout.
        let new =
            unsafe { std::alloc::Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !is_large(layout) && !is_large(new) {
            // SAFETY: forwarded.
            return unsafe { std::alloc::System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: a new block of the new layout, the bytes both hold copied, the old block
        // released with its layout (all through this allocator's own rules above).
        unsafe {
            let p = self.alloc(new);
            if !p.is_null() {
                std::ptr::copy_nonoverlapping(ptr, p, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            p
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::{GlobalAlloc, Layout};

    /// Large blocks come line-aligned, small ones as asked; growing a block across the size
    /// where that changes, and shrinking it back, keeps its bytes.
    #[test]
    fn large_blocks_are_line_aligned_and_keep_their_bytes() {
        let a = LineAligned;
        let small = Layout::from_size_align(100, 4).expect("layout");
        let large = Layout::from_size_align(LARGE + 4, 4).expect("layout");
        // SAFETY: valid non-zero layouts; each block released with the layout it has.
        unsafe {
            for _ in 0..8 {
                let p = a.alloc(large);
                assert!(!p.is_null() && (p as usize).is_multiple_of(LINE));
                a.dealloc(p, large);
            }
            let p = a.alloc(small);
            assert!(!p.is_null());
            for i in 0..100 {
                *p.add(i) = i as u8;
            }
            let p = a.realloc(p, small, LARGE * 2);
            assert!(!p.is_null() && (p as usize).is_multiple_of(LINE));
            assert!((0..100).all(|i| *p.add(i) == i as u8));
            let grown = Layout::from_size_align(LARGE * 2, 4).expect("layout");
            let p = a.realloc(p, grown, 50);
            assert!(!p.is_null());
            assert!((0..50).all(|i| *p.add(i) == i as u8));
            a.dealloc(p, Layout::from_size_align(50, 4).expect("layout"));
            // Large to larger, and the zeroed form.
            let big = a.alloc(large);
            *big.add(LARGE) = 7;
            let bigger = a.realloc(big, large, 3 * LARGE);
            assert!((bigger as usize).is_multiple_of(LINE) && *bigger.add(LARGE) == 7);
            a.dealloc(
                bigger,
                Layout::from_size_align(3 * LARGE, 4).expect("layout"),
            );
            let z = a.alloc_zeroed(large);
            assert!(!z.is_null() && (z as usize).is_multiple_of(LINE));
            assert!((0..large.size()).all(|i| *z.add(i) == 0));
            a.dealloc(z, large);
        }
    }
}
