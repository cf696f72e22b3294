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
use std::task::Waker;
use std::time::Duration;

use crate::state::Shared;
use crate::sync::{Mutex, MutexGuard};

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
    // Both may change in a live reload (std's relaxed atomics: config, not
    // part of the hand-over).
    capacity: std::sync::atomic::AtomicUsize,
    // Nanoseconds.
    max_delay: std::sync::atomic::AtomicU64,
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
            capacity: std::sync::atomic::AtomicUsize::new(capacity),
            max_delay: std::sync::atomic::AtomicU64::new(seawall_core::time::nanos(max_delay)),
        }
    }

    /// The longest a request may wait.
    pub(crate) fn max_delay(&self) -> Duration {
        Duration::from_nanos(self.max_delay.load(Ordering::Relaxed))
    }

    /// A reload's bounds: for requests that join from now on (a smaller
    /// capacity turns none of the waiters away; a request already waiting
    /// keeps the deadline it was given, and is refused at its grant if it
    /// waited longer than the new `max_delay`).
    pub(crate) fn set_bounds(&self, capacity: usize, max_delay: Duration) {
        self.capacity.store(capacity, Ordering::Relaxed);
        self.max_delay
            .store(seawall_core::time::nanos(max_delay), Ordering::Relaxed);
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
            if e.queue.len() >= self.capacity.load(Ordering::Relaxed) {
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

/// Model checks of the hand-over under loom (`--cfg seawall_loom`, see the
/// crate docs): every interleaving of the queue's lock sections (up to
/// `LOOM_MAX_PREEMPTIONS` preemptions) is run.
///
/// The queue's mutex and `Shared`'s atomics (the slot counter, `waiting`)
/// are loom's (`crate::sync`): loom also switches threads between a
/// release's decrement of the slot counter and its look at `waiting`, and
/// between a waiter's increment of `waiting` and its look at the slots.
/// The releaser takes the queue's lock once before it releases, which only
/// adds schedules.
#[cfg(all(test, seawall_loom))]
mod loom_models {
    use std::sync::Arc;
    use std::task::Waker;

    use loom::thread;

    use super::*;
    use crate::{Limit, ShedConfig};

    /// One slot, in use, and a queue.
    fn one_slot_taken() -> Arc<Shared> {
        let config = ShedConfig {
            limit: Limit::Fixed(1),
            max_queue_delay: Some(Duration::from_millis(10)),
            queue_capacity: 4,
            seed: Some(1),
            ..ShedConfig::default()
        };
        // The fixed limit reads no clock; a manual one needs no runtime.
        let clock = seawall_core::Clock::manual().0;
        let shared = Arc::new(Shared::new(&config, None, clock));
        assert!(shared.try_reserve());
        shared
    }

    fn queue(shared: &Shared) -> &WaitQueue {
        shared.queue.as_ref().expect("queue mode")
    }

    /// A waiter that gives up (its deadline passed, or its service was
    /// dropped): what it was handed, it passes on.
    fn wait_and_give_up(shared: &Shared) {
        match queue(shared).join(shared, Waker::noop()) {
            Joined::Granted => shared.release(),
            Joined::Waiting(id) => {
                if queue(shared).leave(shared, id) {
                    shared.release();
                }
            }
            Joined::Full => unreachable!("the queue has room"),
        }
    }

    fn assert_all_returned(shared: &Shared) {
        assert_eq!(shared.in_flight(), 0, "a slot was lost or given twice");
        assert_eq!(shared.waiting.load(Ordering::SeqCst), 0);
        assert!(queue(shared).lock().queue.is_empty());
    }

    /// A slot released while its waiter gives up is either taken by that
    /// waiter (and passed on) or returned: never lost, never doubled.
    #[test]
    fn a_slot_released_while_the_waiter_gives_up_is_returned() {
        loom::model(|| {
            let shared = one_slot_taken();
            let releaser = {
                let shared = shared.clone();
                thread::spawn(move || {
                    drop(queue(&shared).lock());
                    shared.release()
                })
            };
            wait_and_give_up(&shared);
            releaser.join().unwrap();
            assert_all_returned(&shared);
            // Free again for a newcomer.
            assert!(shared.try_reserve());
        });
    }

    /// With a second waiter behind the one that gives up, the released
    /// slot ends with the second waiter, exactly once.
    #[test]
    fn a_slot_released_while_the_waiter_gives_up_goes_to_the_next() {
        loom::model(|| {
            let shared = one_slot_taken();
            let releaser = {
                let shared = shared.clone();
                thread::spawn(move || {
                    drop(queue(&shared).lock());
                    shared.release()
                })
            };
            let quitter = {
                let shared = shared.clone();
                thread::spawn(move || wait_and_give_up(&shared))
            };
            let joined = queue(&shared).join(&shared, Waker::noop());
            releaser.join().unwrap();
            quitter.join().unwrap();
            // Everyone else is done: the one slot is this waiter's, handed
            // to it on joining or while it waited.
            match joined {
                Joined::Granted => {}
                Joined::Waiting(id) => assert_eq!(
                    queue(&shared).poll(&shared, id, Waker::noop()),
                    Waited::Granted,
                    "the freed slot was not handed on"
                ),
                Joined::Full => unreachable!("the queue has room"),
            }
            assert_eq!(shared.in_flight(), 1, "the waiter's slot, once");
            shared.release();
            assert_all_returned(&shared);
        });
    }

    /// A reload that raises the limit while a request joins the queue (and
    /// nothing is released): the request gets the new slot, on joining or
    /// from the reload, exactly once; the slot in use is untouched.
    #[test]
    fn a_reload_raising_the_limit_admits_a_joining_waiter() {
        loom::model(|| {
            let shared = one_slot_taken();
            let reloader = {
                let shared = shared.clone();
                thread::spawn(move || {
                    let config = ShedConfig {
                        limit: Limit::Fixed(2),
                        max_queue_delay: Some(Duration::from_millis(10)),
                        queue_capacity: 4,
                        seed: Some(1),
                        ..ShedConfig::default()
                    };
                    shared.reload(&config).expect("a valid in-place change");
                })
            };
            let joined = queue(&shared).join(&shared, Waker::noop());
            reloader.join().unwrap();
            match joined {
                Joined::Granted => {}
                Joined::Waiting(id) => assert_eq!(
                    queue(&shared).poll(&shared, id, Waker::noop()),
                    Waited::Granted,
                    "the raised limit's slot was not handed to the waiter"
                ),
                Joined::Full => unreachable!("the queue has room"),
            }
            assert_eq!(shared.in_flight(), 2, "the old slot and the waiter's");
            shared.release();
            shared.release();
            assert_all_returned(&shared);
        });
    }

    /// A reload that lowers the limit below the slots in use while one is
    /// released and a request waits: nothing is cancelled, the waiter is
    /// not admitted over the new limit, and every slot comes back.
    #[test]
    fn a_reload_lowering_the_limit_cancels_nothing_and_loses_no_slot() {
        loom::model(|| {
            let config = ShedConfig {
                limit: Limit::Fixed(2),
                max_queue_delay: Some(Duration::from_millis(10)),
                queue_capacity: 4,
                seed: Some(1),
                ..ShedConfig::default()
            };
            let shared = Arc::new(Shared::new(&config, None, seawall_core::Clock::manual().0));
            assert!(shared.try_reserve());
            assert!(shared.try_reserve());
            let reloader = {
                let shared = shared.clone();
                let config = ShedConfig {
                    limit: Limit::Fixed(1),
                    ..config.clone()
                };
                thread::spawn(move || shared.reload(&config).expect("a valid in-place change"))
            };
            let releaser = {
                let shared = shared.clone();
                thread::spawn(move || shared.release())
            };
            let joined = queue(&shared).join(&shared, Waker::noop());
            reloader.join().unwrap();
            releaser.join().unwrap();
            // One slot still in use; the waiter holds the other only if it
            // was handed the released one before the limit fell.
            let granted = match joined {
                Joined::Granted => true,
                Joined::Waiting(id) => {
                    let granted = queue(&shared).leave(&shared, id);
                    if granted {
                        // Handed over while it waited: it passes it on.
                        shared.release();
                    }
                    false
                }
                Joined::Full => unreachable!("the queue has room"),
            };
            if granted {
                assert_eq!(shared.in_flight(), 2);
                shared.release();
            }
            assert_eq!(shared.in_flight(), 1, "the slot never released");
            shared.release();
            assert_all_returned(&shared);
            assert_eq!(shared.limit.load(Ordering::Relaxed), 1);
        });
    }
}
