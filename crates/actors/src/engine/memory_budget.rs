//! The linear memory all of an engine's instances may grow by together: each execution's own
//! limit bounds one handler, this bounds them all, so that the pool's instances (running, and
//! suspended but not yet hibernated) cannot together take more of the host's memory than it
//! was given, however many hostile handlers run at once.
//!
//! Only growth beyond an instance's initial memory (the snapshot's) is counted: that memory is
//! what every instance has, and the pool's size bounds it. An instance gives back what it
//! reserved when it is dropped (its slot's pages past the resident budget go back to the OS).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes of linear-memory growth shared by the instances of one engine.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: usize,
    used: AtomicUsize,
}

impl MemoryBudget {
    pub fn new(limit: usize) -> Arc<MemoryBudget> {
        Arc::new(MemoryBudget { limit, used: AtomicUsize::new(0) })
    }

    /// The budget's size in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Reserves `bytes`; `false` (nothing reserved) when that would pass the limit.
    pub fn reserve(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(bytes).filter(|&after| after <= self.limit)
            })
            .is_ok()
    }

    /// Gives back `bytes` reserved before.
    pub fn release(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_stop_at_the_limit_and_come_back_when_released() {
        let budget = MemoryBudget::new(100);
        assert!(budget.reserve(60));
        assert!(!budget.reserve(41), "past the limit: nothing reserved");
        assert!(budget.reserve(40));
        assert!(!budget.reserve(1));
        budget.release(60);
        assert!(budget.reserve(60));
        assert!(!budget.reserve(usize::MAX), "no overflow");
    }
}
