//! Which pages of a linear memory an execution may have written, from the kernel's page table
//! (`/proc/self/pagemap`), so that hibernating compares only those against the snapshot.
//!
//! A guest's memory is a private mapping of the snapshot's image (copy-on-write) followed by
//! anonymous memory. A page the guest never wrote is either not present (never touched, or
//! given back by a slot reset) or present as the file's page or the shared zero page, and its
//! bytes are the snapshot's. A page the guest wrote is a private page of ours: present and not
//! a file page, or swapped out. So every page that can differ from the snapshot is in
//! [`candidates`]; a few more are (pages a previous execution in the same pooling slot wrote
//! and the slot reset copied back, zero pages), which the comparison that follows filters out.
//!
//! One read of 8 bytes per page: for a 1.5 MiB memory, one `pread` of 3 KiB instead of
//! reading 3 MiB (the memory and the snapshot) to compare them.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Mutex;

use super::image::PAGE;

/// Bits of a pagemap entry (Documentation/admin-guide/mm/pagemap.rst).
const PRESENT: u64 = 1 << 63;
const SWAPPED: u64 = 1 << 62;
const FILE_OR_SHARED: u64 = 1 << 61;

/// The open pagemap and the process it was opened in: a forked child must not read its
/// parent's page table (it would miss the pages the child wrote).
static PAGEMAP: Mutex<Option<(u32, File)>> = Mutex::new(None);

/// Indexes of the pages of `memory` that may differ from what the mapping started with, at or
/// after page `from`; `None` where the page table cannot be read (no `/proc`, another OS),
/// and then every page must be compared.
pub fn candidates(memory: &[u8], from: usize) -> Option<Vec<usize>> {
    let base = memory.as_ptr() as usize;
    if !base.is_multiple_of(PAGE) || !memory.len().is_multiple_of(PAGE) {
        return None;
    }
    let pages = memory.len() / PAGE;
    if from >= pages {
        return Some(Vec::new());
    }
    let mut entries = vec![0u8; (pages - from) * 8];
    let offset = ((base / PAGE + from) * 8) as u64;
    read_pagemap(&mut entries, offset)?;
    let written = entries
        .chunks_exact(8)
        .enumerate()
        .filter(|(_, entry)| {
            let entry = u64::from_le_bytes((*entry).try_into().expect("8 bytes"));
            (entry & PRESENT != 0 && entry & FILE_OR_SHARED == 0) || entry & SWAPPED != 0
        })
        .map(|(index, _)| from + index)
        .collect();
    Some(written)
}

fn read_pagemap(entries: &mut [u8], offset: u64) -> Option<()> {
    let pid = std::process::id();
    let mut pagemap = PAGEMAP.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if pagemap.as_ref().is_none_or(|(opened_in, _)| *opened_in != pid) {
        *pagemap = Some((pid, File::open("/proc/self/pagemap").ok()?));
    }
    let (_, file) = pagemap.as_ref()?;
    file.read_exact_at(entries, offset).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_written_pages_are_the_candidates_and_untouched_ones_are_not() {
        // A zeroed allocation above the allocator's largest mmap threshold (32 MiB for glibc) is
        // fresh anonymous memory: no page of it is present until touched.
        let pages = 256;
        let mut allocation = vec![0u8; 40 << 20];
        let start = allocation.as_ptr().align_offset(PAGE);
        let memory = &mut allocation[start..start + pages * PAGE];
        for page in [3, 4, 100, 255] {
            memory[page * PAGE + 17] = 1;
        }
        assert_eq!(candidates(memory, 0).expect("this test runs on Linux with /proc"), vec![3, 4, 100, 255]);
        assert_eq!(candidates(memory, 5).unwrap(), vec![100, 255]);
        assert_eq!(candidates(memory, pages).unwrap(), Vec::<usize>::new());
    }
}
