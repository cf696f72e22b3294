//! The keyed map under a flood of new keys: the cost of inserting a key
//! nobody has seen into a full map (every insert evicts), at 10 000 and at
//! 1 000 000 keys, and of looking up a known key meanwhile. Eviction is O(1):
//! the two inserts should cost about the same.
//!
//! `cargo bench -p seawall-benches --bench keymap -- --noplot`

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use seawall_core::{KeyMap, KeyMapConfig};

fn full_map(capacity: usize) -> KeyMap<u64, u64> {
    let map = KeyMap::new(
        KeyMapConfig::new()
            .capacity(capacity)
            .idle_ttl(Duration::from_secs(3600)),
    );
    for k in 0..capacity as u64 * 2 {
        let _ = map.get_or_insert_with(k, |k| *k);
    }
    map
}

fn flood(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let _guard = rt.enter();
    let mut group = c.benchmark_group("keymap");
    for capacity in [10_000usize, 1_000_000] {
        let map = full_map(capacity);
        let mut next = u64::MAX / 2;
        group.bench_function(BenchmarkId::new("new key into a full map", capacity), |b| {
            b.iter(|| {
                next += 1;
                black_box(map.get_or_insert_with(next, |k| *k).is_ok())
            })
        });
        let known = next;
        group.bench_function(BenchmarkId::new("known key", capacity), |b| {
            b.iter(|| black_box(map.get(&known)))
        });
        // The floor set by memory alone: a plain hash map of the same size
        // taking one new key and dropping its oldest, per iteration.
        let mut plain: HashMap<u64, Arc<u64>> = HashMap::with_capacity(capacity);
        for k in 0..capacity as u64 {
            plain.insert(k, Arc::new(k));
        }
        let (mut oldest, mut newest) = (0u64, capacity as u64);
        group.bench_function(
            BenchmarkId::new("plain HashMap, insert + remove", capacity),
            |b| {
                b.iter(|| {
                    plain.remove(&oldest);
                    oldest += 1;
                    plain.insert(newest, Arc::new(newest));
                    newest += 1;
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, flood);
criterion_main!(benches);
