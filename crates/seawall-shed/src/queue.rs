//! The bounded wait queue of the queue mode.
//!
//! A waiter is an entry `(id, waker, granted)` in a `VecDeque` that grows as
//! waiters arrive and never reserves the configured capacity (up to 2^24
//! entries of 32 bytes: 512 MiB that a layer which never queues must not
//! hold). `VecDeque` keeps what it grew to, so a queue that once filled
//! allocates nothing more until it fills further. A freed slot is *handed over*: the releaser counts it
//! for the oldest ungranted waiter (it never becomes free in between, so a
//! newcomer cannot take it) and wakes that waiter. The waiter picks its slot
//! up, or, if it gives up (deadline passed, service dropped), passes it on.
//! The lock is taken only when someone waits; the per-call release path reads
//! one atomic.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, MutexGuard};
use std::task::Waker;
use std::time::Duration;

use crate::state::Shared;

#[derive(Debug)]
struct Entry {
    id: u64,
    waker: Waker,
    granted: bool,
}

#[derive(Debug)]
struct Entries {
    next_id: u64,
    queue: VecDeque<Entry>,
}

#[derive(Debug)]
pub(crate) struct WaitQueue {
    entries: Mutex<Entries>,
    capacity: usize,
    pub(crate) max_delay: Duration,
}

/// What joining the queue gave.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Joined {
    /// A slot was free and is now counted for the caller.
    Granted,
    /// Waiting under this id.
    Waiting(u64),
    /// The queue is at capacity.
    Full,
}

/// What a waiter's poll found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Waited {
    /// A slot was handed over and is now the caller's.
    Granted,
    Waiting,
    /// The entry is gone (cannot happen while the id is held).
    Gone,
}

impl WaitQueue {
    pub(crate) fn new(capacity: usize, max_delay: Duration) -> Self {
        WaitQueue {
            entries: Mutex::new(Entries {
                next_id: 0,
                // Grows as it fills (DESIGN rule 4): the bound is checked
                // in `join`, never reserved.
                queue: VecDeque::new(),
            }),
            capacity,
            max_delay,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        // Nothing in the critical sections can panic half-way through an
        // update, so a poisoned queue is still consistent.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Joins the queue, or takes a slot if one is free and nobody is ahead.
    pub(crate) fn join(&self, shared: &Shared, waker: &Waker) -> Joined {
        let id = {
            let mut e = self.lock();
            if e.queue.len() >= self.capacity {
                return Joined::Full;
            }
            let id = e.next_id;
            e.next_id += 1;
            shared.waiting.fetch_add(1, Ordering::SeqCst);
            e.queue.push_back(Entry {
                id,
                waker: waker.clone(),
                granted: false,
            });
            id
        };
        // Pairs with `Shared::release`: a slot freed before our increment is
        // seen here; one freed after it is handed over by the releaser.
        self.grant(shared);
        match self.poll(shared, id, waker) {
            Waited::Granted => Joined::Granted,
            _ => Joined::Waiting(id),
        }
    }

    /// Checks on waiter `id`, updating its waker.
    pub(crate) fn poll(&self, shared: &Shared, id: u64, waker: &Waker) -> Waited {
        let mut e = self.lock();
        let Some(pos) = e.queue.iter().position(|x| x.id == id) else {
            return Waited::Gone;
        };
        if e.queue[pos].granted {
            e.queue.remove(pos);
            shared.waiting.fetch_sub(1, Ordering::SeqCst);
            return Waited::Granted;
        }
        if !e.queue[pos].waker.will_wake(waker) {
            e.queue[pos].waker = waker.clone();
        }
        Waited::Waiting
    }

    /// Leaves the queue; `true` if a slot had been handed over, which the
    /// caller now owns and must release.
    pub(crate) fn leave(&self, shared: &Shared, id: u64) -> bool {
        let mut e = self.lock();
        let Some(pos) = e.queue.iter().position(|x| x.id == id) else {
            return false;
        };
        let granted = e.queue.remove(pos).is_some_and(|x| x.granted);
        shared.waiting.fetch_sub(1, Ordering::SeqCst);
        granted
    }

    /// Hands free slots to the oldest ungranted waiters, waking each one
    /// outside the lock.
    pub(crate) fn grant(&self, shared: &Shared) {
        loop {
            let waker = {
                let mut e = self.lock();
                let Some(entry) = e.queue.iter_mut().find(|x| !x.granted) else {
                    return;
                };
                if !shared.try_reserve() {
                    return;
                }
                entry.granted = true;
                entry.waker.clone()
            };
            waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_does_not_reserve_its_capacity() {
        let q = WaitQueue::new(seawall_core::config::MAX_CAPACITY, Duration::from_millis(1));
        assert_eq!(q.lock().queue.capacity(), 0);
    }
}
