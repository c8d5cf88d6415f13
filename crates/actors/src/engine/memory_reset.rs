//! Resets a finished instance's linear memory to the snapshot by copying back only the pages
//! its execution wrote, which the kernel tracks (userfaultfd write-protection in asynchronous
//! mode, Linux 6.7+).
//!
//! Without it, wasmtime's own reset cannot tell the pages this execution wrote from the pages
//! an earlier execution in the same slot wrote and the reset copied back: both are private
//! pages of ours. Every reset copies them all again, and once they make more than 32 runs
//! (wasmtime's limit) it releases the rest of the slot, which the next execution faults in
//! again (~4 µs a page). A snapshot with libraries is copied back whole instead (3.1 MiB with
//! lodash: two thirds of a `return 1`).
//!
//! Here the memory is registered with a userfaultfd for write-protection, in the mode where
//! the kernel itself lifts the protection on the first write to a page and marks it written
//! (no fault ever reaches us). A reset then:
//!
//! 1. asks the page table (`PAGEMAP_SCAN`) for the pages written since the last reset that are
//!    not the file's or the zero page (those are the snapshot's bytes, never written);
//! 2. copies the snapshot's bytes back into them (zeros past the snapshot), up to the slot's
//!    resident budget, and gives the rest back to the OS (`MADV_DONTNEED`: they read as the
//!    snapshot again);
//! 3. write-protects what it copied back (a second scan, which protects what it matches);
//! 4. once wasmtime's reset is done, makes the pages the slot's executions keep writing
//!    writable again ([`Prefault`], `MADV_POPULATE_WRITE`), off the path of the next execution:
//!    it would otherwise take a fault for the first write to each (~0.4 µs; a lodash `return 1`
//!    writes ~86 pages). Which pages those are is learnt from one reset in [`RELEARN`], after
//!    which nothing is made writable again, so that the next execution's writes alone read as
//!    written. A page made writable reads as written, so it is copied back by the next reset,
//!    whether the execution wrote it or not.
//!
//! Wasmtime's reset, which runs next, then finds nothing written and does nothing. The
//! invariant that makes this safe is the kernel's: a page whose protection is still in place
//! has not been written since it was protected, whoever wrote (the guest, the host, a system
//! call). Nothing is protected that was not copied back first, and a page not protected reads
//! as written, to us and to wasmtime's reset alike. So when anything goes wrong — no
//! userfaultfd (a container's seccomp profile may forbid it; the engine then copies such a
//! slot back whole), a scan that fails, a mapping wasmtime replaced since it was registered
//! (the scan refuses unregistered memory, and the reset registers it again) — what this reset
//! did not do, wasmtime's does.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex, PoisonError};

use super::image::PAGE;

/// Every this many resets of a slot, nothing is made writable again after it (see the module
/// documentation), and the next reset learns which pages the slot's executions write.
pub const RELEARN: u32 = 8;

/// What a reset needs besides the memory: the snapshot it restores, how much of a slot may
/// stay resident, and the pages each slot's executions write.
#[derive(Clone)]
pub struct MemoryReset {
    snapshot: Arc<[u8]>,
    keep_pages: usize,
    /// By the address of the slot's memory.
    slots: Arc<Mutex<HashMap<u64, WrittenBefore>>>,
}

/// The pages one slot's executions write, as learnt by its last reset after a relearning one.
#[derive(Default)]
struct WrittenBefore {
    resets: u32,
    runs: Vec<Range<u64>>,
}

/// Pages of a slot to make writable again once wasmtime's reset of it is done, off the path of
/// the next execution. Dropping it does it.
pub struct Prefault {
    runs: Vec<Range<u64>>,
    /// The engine whose pooled slot the pages are in: it must not be unmapped before.
    _engine: wasmtime::Engine,
}

impl Drop for Prefault {
    fn drop(&mut self) {
        for run in &self.runs {
            // SAFETY: the pages are in a pooled slot that lives as long as the engine held here.
            // Making them writable changes no byte of them, so it does no harm if the slot is
            // in use again already; they then read as written, and are copied back by its
            // next reset. Failing (a run made inaccessible since) leaves a fault to take.
            unsafe {
                libc::madvise(run.start as *mut libc::c_void, (run.end - run.start) as usize, libc::MADV_POPULATE_WRITE)
            };
        }
    }
}

impl MemoryReset {
    /// A reset to `snapshot` keeping at most `keep_resident` bytes of a slot resident (see
    /// [`MemoryReset::available`]: without it, a reset does nothing).
    pub fn new(snapshot: Arc<[u8]>, keep_resident: usize) -> MemoryReset {
        MemoryReset { snapshot, keep_pages: keep_resident / PAGE, slots: Arc::default() }
    }

    /// Whether the kernel can track written pages for this process.
    pub fn available() -> bool {
        tracker().is_some()
    }

    /// Brings `memory`, a pooled slot of `engine`, back to the snapshot and write-protects it,
    /// so that the next reset only sees what the next execution writes; what it returns is to
    /// be dropped after wasmtime's reset of the slot. When it could not, the pages it did not
    /// protect still read as written, and wasmtime's reset restores them.
    pub fn reset(&self, memory: &mut [u8], engine: wasmtime::Engine) -> Option<Prefault> {
        let runs = self.restore_and_protect(memory)?;
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = slots.entry(memory.as_ptr() as u64).or_default();
        slot.resets = slot.resets.wrapping_add(1);
        match slot.resets % RELEARN {
            0 => return None,
            1 => slot.runs = runs,
            _ => {}
        }
        Some(Prefault { runs: slot.runs.clone(), _engine: engine })
    }

    /// The reset proper; the runs of pages it copied back (`None` when it failed).
    fn restore_and_protect(&self, memory: &mut [u8]) -> Option<Vec<Range<u64>>> {
        let tracker = tracker()?;
        let range = memory.as_mut_ptr() as u64..memory.as_mut_ptr() as u64 + memory.len() as u64;
        let written = match tracker.scan(range.clone(), Pass::Written) {
            Err(error) if error.raw_os_error() == Some(libc::EPERM) => {
                // Not registered (yet, or no more: wasmtime mapped the image anew). Once it is,
                // every private page reads as written: this reset copies them all back.
                tracker.register(range.clone()).ok()?;
                tracker.scan(range.clone(), Pass::Written)
            }
            written => written,
        };
        let mut budget = self.keep_pages;
        let mut restored = Vec::new();
        for region in written.ok()? {
            let offset = (region.start - range.start) as usize;
            let bytes = &mut memory[offset..offset + (region.end - region.start) as usize];
            let kept = bytes.len().min(budget * PAGE);
            budget -= kept / PAGE;
            let (kept, released) = bytes.split_at_mut(kept);
            self.restore(offset, kept);
            if !kept.is_empty() {
                restored.push(region.start..region.start + kept.len() as u64);
            }
            if !released.is_empty() && !release(released) {
                return None;
            }
        }
        tracker.scan(range, Pass::Protect).ok()?;
        Some(restored)
    }

    /// Copies the snapshot's bytes at `offset` into `bytes` (zeros past the snapshot).
    fn restore(&self, offset: usize, bytes: &mut [u8]) {
        let snapshot = self.snapshot.get(offset..).unwrap_or_default();
        let (copied, zeroed) = bytes.split_at_mut(snapshot.len().min(bytes.len()));
        copied.copy_from_slice(&snapshot[..copied.len()]);
        zeroed.fill(0);
    }
}

/// Gives `bytes` back to the OS: they read as the mapping's (the snapshot's) again.
fn release(bytes: &mut [u8]) -> bool {
    // SAFETY: `bytes` is page-aligned memory of ours (a scan reported it), which nothing else
    // borrows; after this it reads as the snapshot, which is what the reset wants.
    unsafe { libc::madvise(bytes.as_mut_ptr().cast(), bytes.len(), libc::MADV_DONTNEED) == 0 }
}

/// The process's userfaultfd and page table, opened once per process (a forked child opens
/// its own: the parent's would act on the parent's memory).
struct Tracker {
    pid: u32,
    uffd: OwnedFd,
    pagemap: File,
}

/// `None` inside: tried, and not available in this process.
static TRACKER: Mutex<Option<(u32, Option<Arc<Tracker>>)>> = Mutex::new(None);

fn tracker() -> Option<Arc<Tracker>> {
    let pid = std::process::id();
    let mut tracker = TRACKER.lock().unwrap_or_else(PoisonError::into_inner);
    match &*tracker {
        Some((opened_in, tracker)) if *opened_in == pid => tracker.clone(),
        _ => {
            let opened = Tracker::open(pid).ok().map(Arc::new);
            *tracker = Some((pid, opened.clone()));
            opened
        }
    }
}

/// Which pass of a scan.
#[derive(Clone, Copy, PartialEq)]
enum Pass {
    /// Report the pages written since they were last protected.
    Written,
    /// Protect them (after their restore).
    Protect,
}

impl Tracker {
    fn open(pid: u32) -> io::Result<Tracker> {
        // User-mode-only faults are all an unprivileged process may ask for, and all it needs:
        // in the asynchronous mode no fault reaches the userfaultfd at all.
        let flags = libc::O_CLOEXEC | libc::O_NONBLOCK;
        // SAFETY: the system call takes flags and returns a new descriptor (or -1).
        let mut fd = unsafe { libc::syscall(libc::SYS_userfaultfd, flags | UFFD_USER_MODE_ONLY) };
        if fd < 0 {
            // SAFETY: as above (kernels before 5.11 know no user-mode-only flag).
            fd = unsafe { libc::syscall(libc::SYS_userfaultfd, flags) };
        }
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a descriptor the system call just returned, owned by nothing else.
        let uffd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let mut api = UffdioApi { api: UFFD_API, features: UFFD_FEATURE_WP_ASYNC, ioctls: 0 };
        ioctl(uffd.as_raw_fd(), UFFDIO_API, &mut api)?;
        let tracker = Tracker { pid, uffd, pagemap: File::open("/proc/self/pagemap")? };
        // Kernels without the scan refuse it whatever it asks.
        tracker.scan(0..0, Pass::Written)?;
        Ok(tracker)
    }

    /// Registers `range` for write-protection.
    fn register(&self, range: std::ops::Range<u64>) -> io::Result<()> {
        debug_assert_eq!(self.pid, std::process::id());
        let mut register = UffdioRegister {
            range: UffdioRange { start: range.start, len: range.end - range.start },
            mode: UFFDIO_REGISTER_MODE_WP,
            ioctls: 0,
        };
        ioctl(self.uffd.as_raw_fd(), UFFDIO_REGISTER, &mut register)
    }

    /// The runs of pages in `range` written since they were protected, neither the file's nor
    /// the zero page; `Pass::Protect` protects them as it goes. An error of `EPERM` is memory
    /// in `range` that is not registered; a scan that stops short of the end of `range` is an
    /// error too (a partial answer would leave written pages out of the reset).
    fn scan(&self, range: std::ops::Range<u64>, pass: Pass) -> io::Result<Vec<PageRegion>> {
        let mut found = Vec::new();
        let mut regions = [PageRegion::default(); 64];
        let mut start = range.start;
        loop {
            let mut arg = PmScanArg {
                size: size_of::<PmScanArg>() as u64,
                flags: PM_SCAN_CHECK_WPASYNC | if pass == Pass::Protect { PM_SCAN_WP_MATCHING } else { 0 },
                start,
                end: range.end,
                walk_end: 0,
                vec: regions.as_mut_ptr() as u64,
                vec_len: regions.len() as u64,
                max_pages: 0,
                category_inverted: PAGE_IS_FILE | PAGE_IS_PFNZERO,
                category_mask: PAGE_IS_WRITTEN | PAGE_IS_FILE | PAGE_IS_PFNZERO,
                // Not holes (no page at all): they read as the mapping's bytes, never written.
                category_anyof_mask: PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
                return_mask: PAGE_IS_WRITTEN,
            };
            // SAFETY: the argument and the regions it points to outlive the call, which only
            // reads the page table of `range` (and protects pages in it).
            let count = unsafe { libc::ioctl(self.pagemap.as_raw_fd(), PAGEMAP_SCAN, &mut arg) };
            if count < 0 {
                return Err(io::Error::last_os_error());
            }
            if pass == Pass::Written {
                found.extend_from_slice(&regions[..count as usize]);
            }
            // The scan stops where it filled the regions it was given: go on from there.
            match arg.walk_end {
                end if end >= range.end => return Ok(found),
                end if end > start => start = end,
                end => return Err(io::Error::other(format!("the page-table scan stopped at {end:#x}"))),
            }
        }
    }
}

fn ioctl<T>(fd: i32, request: libc::c_ulong, arg: &mut T) -> io::Result<()> {
    // SAFETY: every request used here reads and writes exactly a `T`.
    match unsafe { libc::ioctl(fd, request, arg as *mut T) } {
        -1 => Err(io::Error::last_os_error()),
        _ => Ok(()),
    }
}

// The kernel's interface (include/uapi/linux/userfaultfd.h and fs.h, Linux 6.7), which the
// `libc` crate does not have yet.

const UFFD_USER_MODE_ONLY: libc::c_int = 1;
const UFFD_API: u64 = 0xAA;
const UFFD_FEATURE_WP_ASYNC: u64 = 1 << 15;
const UFFDIO_REGISTER_MODE_WP: u64 = 1 << 1;
const PM_SCAN_WP_MATCHING: u64 = 1 << 0;
const PM_SCAN_CHECK_WPASYNC: u64 = 1 << 1;
const PAGE_IS_WRITTEN: u64 = 1 << 1;
const PAGE_IS_FILE: u64 = 1 << 2;
const PAGE_IS_PRESENT: u64 = 1 << 3;
const PAGE_IS_SWAPPED: u64 = 1 << 4;
const PAGE_IS_PFNZERO: u64 = 1 << 5;

/// `_IOWR(kind, number, T)`.
const fn iowr<T>(kind: u8, number: u8) -> libc::c_ulong {
    (3 << 30 | (size_of::<T>() as u64) << 16 | (kind as u64) << 8 | number as u64) as libc::c_ulong
}
const UFFDIO_API: libc::c_ulong = iowr::<UffdioApi>(0xAA, 0x3F);
const UFFDIO_REGISTER: libc::c_ulong = iowr::<UffdioRegister>(0xAA, 0x00);
const PAGEMAP_SCAN: libc::c_ulong = iowr::<PmScanArg>(b'f', 16);

#[repr(C)]
struct UffdioApi {
    api: u64,
    features: u64,
    ioctls: u64,
}

#[repr(C)]
struct UffdioRange {
    start: u64,
    len: u64,
}

#[repr(C)]
struct UffdioRegister {
    range: UffdioRange,
    mode: u64,
    ioctls: u64,
}

#[repr(C)]
struct PmScanArg {
    size: u64,
    flags: u64,
    start: u64,
    end: u64,
    walk_end: u64,
    vec: u64,
    vec_len: u64,
    max_pages: u64,
    category_inverted: u64,
    category_mask: u64,
    category_anyof_mask: u64,
    return_mask: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct PageRegion {
    start: u64,
    end: u64,
    categories: u64,
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;
    use crate::engine::{Engine, EngineConfig, ExecutionRequest, Library, LibrarySlotReset, Status};

    /// A memory laid out as wasmtime lays out a slot: the snapshot mapped privately from a file
    /// (copy-on-write), then anonymous memory (what a guest grows into).
    struct Slot {
        base: *mut u8,
        len: usize,
        snapshot: Arc<[u8]>,
    }

    impl Slot {
        fn new(snapshot_pages: usize, pages: usize) -> Slot {
            let snapshot: Vec<u8> = (0..snapshot_pages * PAGE).map(|i| (i * 7 % 251) as u8 + 1).collect();
            let len = pages * PAGE;
            // SAFETY: plain system calls on memory and descriptors this test owns.
            unsafe {
                let file = libc::memfd_create(c"snapshot".as_ptr(), libc::MFD_CLOEXEC);
                assert!(file >= 0);
                assert_eq!(libc::write(file, snapshot.as_ptr().cast(), snapshot.len()), snapshot.len() as isize);
                let prot = libc::PROT_READ | libc::PROT_WRITE;
                let base = libc::mmap(std::ptr::null_mut(), len, prot, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0);
                assert_ne!(base, libc::MAP_FAILED);
                let image = libc::mmap(base, snapshot.len(), prot, libc::MAP_PRIVATE | libc::MAP_FIXED, file, 0);
                assert_eq!(image, base);
                libc::close(file);
                Slot { base: base.cast(), len, snapshot: snapshot.into() }
            }
        }

        fn memory(&mut self) -> &mut [u8] {
            // SAFETY: the mapping lives as long as `self`, and only `self` hands it out.
            unsafe { std::slice::from_raw_parts_mut(self.base, self.len) }
        }

        /// What a fresh instance sees: the snapshot, then zeros.
        fn is_fresh(&mut self) -> bool {
            let snapshot = self.snapshot.clone();
            let (image, rest) = self.memory().split_at(snapshot.len());
            image == &*snapshot && rest.iter().all(|&byte| byte == 0)
        }

        fn written_since_reset(&mut self) -> Vec<u64> {
            let range = self.base as u64..self.base as u64 + self.len as u64;
            let regions = tracker().expect("tracked").scan(range, Pass::Written).expect("the slot is registered");
            regions
                .iter()
                .flat_map(|region| (region.start..region.end).step_by(PAGE))
                .map(|page| (page - self.base as u64) / PAGE as u64)
                .collect()
        }

        /// The pages of ours (written once, not the file's or the zero page), protected or not.
        fn private_pages(&mut self) -> Vec<u64> {
            let tracker = tracker().expect("tracked");
            let mut regions = [PageRegion::default(); 64];
            let mut arg = PmScanArg {
                size: size_of::<PmScanArg>() as u64,
                flags: 0,
                start: self.base as u64,
                end: self.base as u64 + self.len as u64,
                walk_end: 0,
                vec: regions.as_mut_ptr() as u64,
                vec_len: regions.len() as u64,
                max_pages: 0,
                category_inverted: PAGE_IS_FILE | PAGE_IS_PFNZERO,
                category_mask: PAGE_IS_PRESENT | PAGE_IS_FILE | PAGE_IS_PFNZERO,
                category_anyof_mask: 0,
                return_mask: PAGE_IS_PRESENT,
            };
            // SAFETY: as in `Tracker::scan`.
            let count = unsafe { libc::ioctl(tracker.pagemap.as_raw_fd(), PAGEMAP_SCAN, &mut arg) };
            assert!(count >= 0);
            regions[..count as usize]
                .iter()
                .flat_map(|region| (region.start..region.end).step_by(PAGE))
                .map(|page| (page - self.base as u64) / PAGE as u64)
                .collect()
        }

        fn write(&mut self, pages: &[usize]) {
            for &page in pages {
                self.memory()[page * PAGE + 123] ^= 0x5a;
            }
        }
    }

    impl Drop for Slot {
        fn drop(&mut self) {
            // SAFETY: the mapping `new` made.
            unsafe { libc::munmap(self.base.cast(), self.len) };
        }
    }

    fn require_tracking() {
        assert!(
            MemoryReset::available(),
            "this test needs the kernel to track written pages: Linux 6.7 or later, and userfaultfd \
             allowed (a container's seccomp profile may forbid it)"
        );
    }

    #[test]
    fn a_reset_copies_back_exactly_what_was_written_since_the_last_one() {
        require_tracking();
        let mut slot = Slot::new(64, 128);
        let reset = MemoryReset::new(slot.snapshot.clone(), 128 * PAGE);
        slot.memory()[..].iter().step_by(PAGE).for_each(|_| ()); // reads change nothing
        slot.write(&[1, 5, 63, 64, 100]);
        assert!(!slot.is_fresh());
        assert!(reset.restore_and_protect(slot.memory()).is_some(), "the first reset registers the memory");
        assert!(slot.is_fresh());

        slot.write(&[7, 100]);
        assert_eq!(slot.written_since_reset(), vec![7, 100], "the pages restored before stayed protected");
        assert!(reset.restore_and_protect(slot.memory()).is_some());
        assert!(slot.is_fresh());
        assert_eq!(slot.written_since_reset(), Vec::<u64>::new());

        // The kernel writing (a system call filling the memory) counts as well.
        let mut pipe = [0; 2];
        // SAFETY: system calls on descriptors and memory this test owns.
        unsafe {
            assert_eq!(libc::pipe(pipe.as_mut_ptr()), 0);
            assert_eq!(libc::write(pipe[1], b"secret".as_ptr().cast(), 6), 6);
            assert_eq!(libc::read(pipe[0], slot.base.add(9 * PAGE + 40).cast(), 6), 6);
            libc::close(pipe[0]);
            libc::close(pipe[1]);
        }
        assert_eq!(slot.written_since_reset(), vec![9]);
        assert!(reset.restore_and_protect(slot.memory()).is_some());
        assert!(slot.is_fresh());
    }

    #[test]
    fn the_pages_a_slot_keeps_writing_are_made_writable_again_but_for_one_reset_in_relearn() {
        require_tracking();
        let mut slot = Slot::new(16, 32);
        let reset = MemoryReset::new(slot.snapshot.clone(), 32 * PAGE);
        let engine = wasmtime::Engine::default();
        for round in 1..=2 * RELEARN {
            slot.write(&[3, 20]);
            if round > 1 {
                slot.write(&[round as usize % 2 + 8]); // written once in a while: not kept writable
            }
            let prefault = reset.reset(slot.memory(), engine.clone());
            assert!(slot.is_fresh(), "round {round}");
            assert_eq!(slot.written_since_reset(), Vec::<u64>::new(), "round {round}: all protected");
            drop(prefault);
            let writable = slot.written_since_reset();
            match round % RELEARN {
                0 => assert_eq!(writable, Vec::<u64>::new(), "round {round}: relearning"),
                // The first reset learns 3 and 20 (and 9), the one after relearning 3, 20 and 8 or 9.
                1 => assert!(writable.starts_with(&[3]) && writable.ends_with(&[20]), "round {round}: {writable:?}"),
                _ => assert!(writable.contains(&3) && writable.contains(&20), "round {round}: {writable:?}"),
            }
            assert!(slot.is_fresh(), "making pages writable changes no byte");
        }
    }

    #[test]
    fn past_its_budget_a_reset_gives_pages_back_and_they_read_as_the_snapshot() {
        require_tracking();
        let mut slot = Slot::new(8, 16);
        let reset = MemoryReset::new(slot.snapshot.clone(), 2 * PAGE);
        slot.write(&[1, 2, 3, 10, 11]);
        assert!(reset.restore_and_protect(slot.memory()).is_some());
        assert!(slot.is_fresh());
        assert_eq!(slot.private_pages(), vec![1, 2], "two pages copied back, the others released");
        slot.write(&[3, 11]);
        assert!(reset.restore_and_protect(slot.memory()).is_some());
        assert!(slot.is_fresh());
    }

    #[test]
    fn a_memory_mapped_anew_is_registered_again_and_reset_whole() {
        require_tracking();
        let mut slot = Slot::new(4, 8);
        let reset = MemoryReset::new(slot.snapshot.clone(), 8 * PAGE);
        slot.write(&[0]);
        assert!(reset.restore_and_protect(slot.memory()).is_some());
        // As wasmtime does when a slot gets another image: a new mapping, not registered.
        // SAFETY: remaps memory this test owns, with nothing borrowing it.
        unsafe {
            let prot = libc::PROT_READ | libc::PROT_WRITE;
            let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED;
            assert_eq!(
                libc::mmap(slot.base.add(4 * PAGE).cast(), 4 * PAGE, prot, flags, -1, 0),
                slot.base.add(4 * PAGE).cast()
            );
        }
        slot.write(&[2, 6]);
        assert!(reset.restore_and_protect(slot.memory()).is_some());
        assert!(slot.is_fresh());
        assert_eq!(slot.written_since_reset(), Vec::<u64>::new());
    }

    /// Every fresh instance of `engine` starts from the snapshot, even past its initial memory.
    fn assert_fresh(engine: &Engine, after: &str) {
        let mut fresh = engine.blank_instance().unwrap();
        assert!(fresh.memory() == &*engine.snapshot, "a fresh instance after {after} is not the snapshot");
        let initial = fresh.memory().len();
        fresh.grow_memory_to(initial as u64 + (8 << 20)).unwrap();
        let grown = fresh.memory_mut();
        assert!(grown[initial..].iter().all(|&byte| byte == 0), "memory grown after {after} is not zeros");
    }

    #[test]
    fn with_libraries_every_execution_starts_from_the_snapshot_whatever_the_one_before_did() {
        require_tracking();
        let library = Library::new("lib.js", "var lib = { items: Array.from({length: 20000}, (_, i) => ({i})) };");
        let config = EngineConfig {
            module_cache_dir: None,
            libraries: vec![library],
            library_slot_reset: LibrarySlotReset::WrittenPages,
            ..EngineConfig::default()
        };
        let engine = Engine::with_slots(config, 2).unwrap();
        assert!(engine.memory_reset.is_some(), "a snapshot with libraries is reset page by page");
        let handlers = [
            "lib.items.forEach(o => { o.i = -1; o.s = 'x'.repeat(50); }); return 1;",
            "globalThis.leak = new Array(200000).fill('secret'); return leak.length;",
            "const s = 'y'.repeat(6 << 20); return s.length;",
            "while (true) {}",
            "let a = []; while (true) a.push(new Array(1e5).fill(1));",
            "throw new Error('no');",
            "return lib.items.length;",
        ];
        assert_fresh(&engine, "the start");
        // Enough rounds for every slot to relearn its pages more than once.
        for handler in handlers.iter().cycle().take(handlers.len() * 3) {
            let mut request = ExecutionRequest::source(*handler);
            request.timeout = std::time::Duration::from_millis(200);
            request.memory_limit = Some(32 << 20);
            drop(engine.execute(request));
            assert_fresh(&engine, handler);
        }
        let outcome = engine.execute(ExecutionRequest::source("return lib.items.filter(o => o.i < 0).length;"));
        assert_eq!((outcome.result.status, outcome.result.return_value), (Status::Success, serde_json::json!(0)));
    }

    #[test]
    fn the_tracker_of_a_process_is_its_own() {
        require_tracking();
        let tracker = tracker().unwrap();
        assert_eq!(tracker.pid, std::process::id());
        assert!(tracker.uffd.as_raw_fd() >= 0);
    }
}
