//! The table of live suspensions: those whose execution an instance actor still holds.
//!
//! A slab: a live suspension's id is its random part (128 bits, as every suspension id) and its
//! slab index, so finding it is an index plus a constant-time comparison of the random part,
//! and an id guessed or kept after use finds nothing (its index may hold another suspension,
//! whose random part differs).

use std::time::Instant;

use slab::Slab;
use subtle::ConstantTimeEq as _;
use tokio::sync::oneshot;

use crate::engine::{ExecutionError, SuspensionId};
use crate::workers::PooledActor;

/// A live suspension, in the pool's table (see [`super::lifecycle`]).
pub(crate) enum Live {
    /// Its actor holds it.
    Parked { actor: PooledActor, deadline: Instant },
    /// A resume is running it (a second resume finds nothing).
    Resuming { deadline: Instant },
    /// Its actor is turning it into an image. The first resume to come is handed the image
    /// (it came in time, however long the hibernation takes), as if it had found the suspension
    /// parked; a cancel waits for the image to be stored, then cancels it there.
    Hibernating { resume: Option<oneshot::Sender<Vec<u8>>>, waiters: Vec<oneshot::Sender<()>> },
    /// Its hibernation failed (the store refused the image: past its bounds, or unreachable), so
    /// its execution is gone; until its deadline, its resume gets this error, as its result.
    Lost { error: ExecutionError, deadline: Instant },
}

impl Live {
    /// The actor holding the execution, if one does.
    pub(crate) fn into_actor(self) -> Option<PooledActor> {
        match self {
            Live::Parked { actor, .. } => Some(actor),
            _ => None,
        }
    }
}

/// Marks the live suspension `id` as hibernating if it is parked; its actor and deadline.
pub(crate) fn take_for_hibernation(live: &mut LiveTable<Live>, id: &SuspensionId) -> Option<(PooledActor, Instant)> {
    let entry = live.get_mut(id)?;
    if !matches!(entry, Live::Parked { .. }) {
        return None;
    }
    match std::mem::replace(entry, Live::Hibernating { resume: None, waiters: Vec::new() }) {
        Live::Parked { actor, deadline } => Some((actor, deadline)),
        _ => unreachable!("matched above"),
    }
}

/// Live suspensions, each holding a `T`.
pub struct LiveTable<T> {
    slots: Slab<(SuspensionId, T)>,
}

impl<T> Default for LiveTable<T> {
    fn default() -> Self {
        LiveTable { slots: Slab::new() }
    }
}

impl<T> LiveTable<T> {
    /// Adds a live suspension; its id (a new random part and its index).
    pub fn insert(&mut self, value: T) -> SuspensionId {
        let entry = self.slots.vacant_entry();
        let id = SuspensionId(format!("{}-{:x}", SuspensionId::random().0, entry.key()));
        entry.insert((id.clone(), value));
        id
    }

    fn index_of(&self, id: &SuspensionId) -> Option<usize> {
        let (_, index) = id.0.rsplit_once('-')?;
        let index = usize::from_str_radix(index, 16).ok()?;
        let (held, _) = self.slots.get(index)?;
        bool::from(held.0.as_bytes().ct_eq(id.0.as_bytes())).then_some(index)
    }

    pub fn get_mut(&mut self, id: &SuspensionId) -> Option<&mut T> {
        let index = self.index_of(id)?;
        Some(&mut self.slots[index].1)
    }

    pub fn remove(&mut self, id: &SuspensionId) -> Option<T> {
        let index = self.index_of(id)?;
        Some(self.slots.remove(index).1)
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// The ids of the suspensions for which `select` holds.
    pub fn ids_where(&self, mut select: impl FnMut(&T) -> bool) -> Vec<SuspensionId> {
        self.slots.iter().filter(|(_, (_, value))| select(value)).map(|(_, (id, _))| id.clone()).collect()
    }

    /// How many suspensions `select` holds for.
    pub fn count_where(&self, mut select: impl FnMut(&T) -> bool) -> usize {
        self.slots.iter().filter(|(_, (_, value))| select(value)).count()
    }

    /// The id of the first suspension for which `select` holds.
    pub fn first_where(&self, mut select: impl FnMut(&T) -> bool) -> Option<SuspensionId> {
        self.slots.iter().find(|(_, (_, value))| select(value)).map(|(_, (id, _))| id.clone())
    }

    /// Removes every suspension.
    pub fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.slots.drain().map(|(_, value)| value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_finds_its_suspension_once_and_a_reused_index_finds_only_the_new_one() {
        let mut table = LiveTable::default();
        let first = table.insert("first");
        assert_eq!(table.get_mut(&first), Some(&mut "first"));
        assert_eq!(table.remove(&first), Some("first"));
        let second = table.insert("second");
        assert_eq!(first.0.rsplit_once('-').unwrap().1, second.0.rsplit_once('-').unwrap().1, "same index");
        assert_eq!(table.get_mut(&first), None, "a used id finds nothing");
        assert_eq!(table.get_mut(&second), Some(&mut "second"));
        for guess in ["", "-0", "0", "zz-0", &format!("{}-0", "0".repeat(32))] {
            assert_eq!(table.get_mut(&SuspensionId(guess.into())), None, "{guess}");
        }
    }
}
