//! Memory: what the OS says is available, checks before large allocations, result buffers.

use crate::element::Element;
use crate::error::{Error, Result};

/// Bytes of memory the OS reports as available, where it says.
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// `Err(OutOfMemory)` unless `count` elements of `T` fit in the memory the OS reports available.
pub(crate) fn check_room<T: Element>(count: u128, what: &str) -> Result<()> {
    let total = count * std::mem::size_of::<T>() as u128;
    let avail = available_memory();
    if total > isize::MAX as u128 || avail.is_some_and(|a| total > a as u128) {
        return Err(Error::OutOfMemory {
            bytes: total,
            available: avail,
            what: what.to_string(),
        });
    }
    Ok(())
}

/// `n1 × n2 × per` as a count of elements, or the `OutOfMemory` error naming `what`.
pub(crate) fn count<T: Element>(n1: usize, n2: usize, per: usize, what: impl FnOnce() -> String) -> Result<usize> {
    n1.checked_mul(n2)
        .and_then(|c| c.checked_mul(per))
        .ok_or_else(|| Error::OutOfMemory {
            bytes: n1 as u128 * n2 as u128 * per as u128 * std::mem::size_of::<T>() as u128,
            available: available_memory(),
            what: what(),
        })
}

/// Allocate zeroed result buffers of `counts` elements, or fail with the size they would need
/// (checked against the memory the OS reports as available, before anything is allocated).
pub(crate) fn alloc_results<T: Element>(counts: &[usize], what: &str) -> Result<Vec<Vec<T>>> {
    check_room::<T>(counts.iter().map(|&n| n as u128).sum(), what)?;
    // `vec![0; n]` allocates zeroed pages lazily (calloc): no pass over the memory here
    let out: Vec<Vec<T>> = counts.iter().map(|&n| vec![T::ZERO; n]).collect();
    for v in &out {
        advise_huge_pages(v);
    }
    Ok(out)
}

/// Whether the bytes `[addr, addr + len)` lie entirely in shared mappings of files
/// (`MAP_SHARED`, read from `/proc/self/maps`: flag `s` and a nonzero inode), where
/// `madvise(MADV_DONTNEED)` only unmaps pages whose contents stay in the page cache. Private,
/// anonymous or unmapped memory, or any doubt (no `/proc`, not Linux, an empty range): `false`.
pub fn is_shared_file_mapping(addr: usize, len: usize) -> bool {
    #[cfg(target_os = "linux")]
    {
        let Some(end) = addr.checked_add(len) else {
            return false;
        };
        if len == 0 {
            return false;
        }
        let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
            return false;
        };
        // the mappings are listed in address order: walk those overlapping [addr, end)
        let mut at = addr;
        for line in maps.lines() {
            let mut f = line.split_whitespace();
            let (Some(range), Some(perms), Some(_off), Some(_dev), Some(inode)) =
                (f.next(), f.next(), f.next(), f.next(), f.next())
            else {
                return false;
            };
            let Some((lo, hi)) = range.split_once('-') else {
                return false;
            };
            let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16)) else {
                return false;
            };
            if hi <= at {
                continue;
            }
            if lo > at {
                return false; // a hole
            }
            let shared = perms.as_bytes().get(3) == Some(&b's');
            if !shared || inode == "0" {
                return false;
            }
            at = hi;
            if at >= end {
                return true;
            }
        }
        false
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (addr, len);
        false
    }
}

/// Ask the kernel to back a large, untouched buffer with transparent huge pages: 512× fewer page
/// faults when the result is first written (Linux only; a no-op elsewhere or when refused).
fn advise_huge_pages<T>(v: &[T]) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = v.as_ptr() as usize;
        let end = start + std::mem::size_of_val(v);
        let (lo, hi) = (start.div_ceil(HUGE) * HUGE, end / HUGE * HUGE);
        if hi > lo {
            // SAFETY: [lo, hi) lies inside the live allocation; MADV_HUGEPAGE changes no contents.
            unsafe {
                libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = v;
}
