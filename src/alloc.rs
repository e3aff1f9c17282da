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
