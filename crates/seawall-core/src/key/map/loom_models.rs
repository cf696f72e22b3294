//! Model checks of the map's races under loom: every interleaving of the
//! threads below (up to `LOOM_MAX_PREEMPTIONS` preemptions) is run.
//!
//! The map's locks, atomics and `Arc`s are loom's here (`crate::sync`), so
//! `free`'s `Arc::strong_count` and the `used` stamps are the modelled
//! ones. The TTL is long and no time passes, so nothing is idle: every
//! eviction is an insert making room, from the least recently used key that
//! is fresh and unheld.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ::loom::sync::Arc as LoomArc;
use ::loom::thread;

use super::*;

fn map(capacity: usize) -> KeyMap<u32, u32> {
    KeyMap::new(
        KeyMapConfig::new()
            .capacity(capacity)
            .idle_ttl(Duration::from_secs(3600)),
    )
}

/// Two threads inserting the same new key get the same value, made once.
#[test]
fn racing_inserts_of_one_key_make_it_once() {
    ::loom::model(|| {
        let m = LoomArc::new(map(4));
        let made = LoomArc::new(AtomicUsize::new(0));
        let spawn = |m: LoomArc<KeyMap<u32, u32>>, made: LoomArc<AtomicUsize>| {
            thread::spawn(move || {
                m.get_or_insert_with(7, |_| {
                    made.fetch_add(1, Ordering::Relaxed);
                    70
                })
                .unwrap()
            })
        };
        let a = spawn(m.clone(), made.clone());
        let b = spawn(m.clone(), made.clone());
        let (a, b) = (a.join().unwrap(), b.join().unwrap());
        assert!(Arc::ptr_eq(&a, &b), "both callers share one value");
        assert_eq!(made.load(Ordering::Relaxed), 1, "`make` ran once");
        assert_eq!(m.len(), 1);
        assert!(Arc::ptr_eq(&m.get(&7).unwrap(), &a));
    });
}

/// A lookup racing the eviction of its key either misses, or gets the
/// key's value and keeps it from being evicted while it holds it; the map
/// is never over capacity, and every eviction is reported once.
#[test]
fn a_lookup_racing_an_eviction_gets_the_value_or_misses() {
    ::loom::model(|| {
        let evicted = LoomArc::new(AtomicUsize::new(0));
        let seen = evicted.clone();
        let m = LoomArc::new(map(1).on_evict(move |k, v| {
            assert_eq!((*k, *v), (1, 10), "only the old key may go");
            seen.fetch_add(1, Ordering::Relaxed);
        }));
        m.get_or_insert_with(1, |_| 10).unwrap();

        let reader = {
            let m = m.clone();
            thread::spawn(move || m.get(&1))
        };
        let inserter = {
            let m = m.clone();
            thread::spawn(move || m.get_or_insert_with(2, |_| 20).is_ok())
        };
        let watcher = {
            let m = m.clone();
            thread::spawn(move || assert!(m.len() <= 1, "over capacity"))
        };
        let held = reader.join().unwrap();
        let inserted = inserter.join().unwrap();
        watcher.join().unwrap();

        match held {
            // Held since before the insert made room: it could not evict 1.
            Some(v) if !inserted => {
                assert_eq!(*v, 10);
                assert!(
                    Arc::ptr_eq(&m.get(&1).unwrap(), &v),
                    "held and still mapped"
                );
                assert!(m.get(&2).is_none());
                assert_eq!(evicted.load(Ordering::Relaxed), 0);
            }
            // `held` is alive until here: an insert that made room after
            // the lookup evicted a held value.
            Some(_) => panic!("a held value was evicted"),
            None => {
                assert!(inserted, "a miss means 1 was evicted to make room for 2");
                assert_eq!(*m.get(&2).unwrap(), 20);
                assert!(m.get(&1).is_none());
                assert_eq!(evicted.load(Ordering::Relaxed), 1);
            }
        }
        assert_eq!(m.len(), 1);
    });
}

/// Inserts of distinct new keys into a full map never leave it over
/// capacity, never evict a key whose state is not fresh, and fail only
/// while the one key they may evict is held.
#[test]
fn racing_inserts_never_exceed_capacity_nor_evict_a_protected_key() {
    ::loom::model(|| {
        // Odd values stand for state that is not fresh (a budget key owing
        // tokens): never evictable.
        let m = LoomArc::new(map(2).evictable_when(|v: &u32, _| v % 2 == 0));
        m.get_or_insert_with(1, |_| 1).unwrap();
        let inserts: Vec<_> = [2u32, 4]
            .into_iter()
            .map(|k| {
                let m = m.clone();
                thread::spawn(move || {
                    // Dropped at once: a caller done with its key.
                    let ok = m.get_or_insert_with(k, |k| *k).is_ok();
                    assert!(m.len() <= 2, "over capacity");
                    ok
                })
            })
            .collect();
        let ok: Vec<bool> = inserts.into_iter().map(|t| t.join().unwrap()).collect();
        // The second insert fails only if the first still held its value:
        // one of them always gets in.
        assert!(ok.contains(&true), "{ok:?}");
        assert_eq!(m.len(), 2);
        assert_eq!(*m.get(&1).unwrap(), 1, "the protected key stays");
    });
}
