use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::Clock;
use crate::config::{Check, ConfigError};
use crate::sync::{Arc, AtomicU64, RwLock, RwLockReadGuard, RwLockWriteGuard};
use hashbrown::HashTable;

/// Bounds of a [`KeyMap`].
///
/// | field | default | meaning |
/// |-------|---------|---------|
/// | `capacity` | 10 000 | most keys held at once |
/// | `idle_ttl` | 5 minutes | a key unused this long may be evicted |
///
/// ```
/// use std::time::Duration;
/// use seawall_core::KeyMapConfig;
///
/// let cfg = KeyMapConfig::new().capacity(1_000).idle_ttl(Duration::from_secs(60));
/// assert!(cfg.validate().is_ok());
/// assert!(KeyMapConfig::new().capacity(0).validate().is_err());
/// ```
///
/// In a keyed layer's config it is the field `keys`, and in TOML its table:
///
/// ```toml
/// [client.breaker.keys]
/// capacity = 10000
/// idle_ttl = "5m"
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
#[non_exhaustive]
pub struct KeyMapConfig {
    /// The most keys held at once.
    pub capacity: usize,
    /// How long a key must be unused before it may be evicted.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub idle_ttl: Duration,
}

impl Default for KeyMapConfig {
    fn default() -> Self {
        KeyMapConfig {
            capacity: 10_000,
            idle_ttl: Duration::from_secs(300),
        }
    }
}

impl KeyMapConfig {
    /// The defaults in the table above.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the most keys held at once.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Sets how long a key must be unused before it may be evicted.
    pub fn idle_ttl(mut self, ttl: Duration) -> Self {
        self.idle_ttl = ttl;
        self
    }

    /// Checks that the capacity is in `1..=`[`MAX_CAPACITY`] and the TTL in
    /// `1ns..=`[`MAX_DURATION`].
    ///
    /// [`MAX_CAPACITY`]: crate::config::MAX_CAPACITY
    /// [`MAX_DURATION`]: crate::config::MAX_DURATION
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut check = Check::new();
        check
            .capacity("capacity", self.capacity)
            .nonzero_duration("idle_ttl", self.idle_ttl);
        check.finish()
    }
}

/// [`KeyMap::get_or_insert_with`] found the map full of keys it may not evict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyMapFull {
    /// The map's capacity.
    pub capacity: usize,
}

impl fmt::Display for KeyMapFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "key map full: all {} keys are in use or may not be evicted",
            self.capacity
        )
    }
}

impl std::error::Error for KeyMapFull {}

/// The hasher a [`KeyMap`] uses unless given another: [foldhash]'s fast
/// hash (the default of `hashbrown`), seeded at random for each map.
///
/// A lookup hashes its key once per call, so the hash is on every keyed
/// layer's per-call path: this one costs a few nanoseconds for a `u64` or a
/// short string where the standard library's SipHash costs tens. Being
/// seeded per map, it resists keys chosen to collide as well as a bounded map
/// needs (a shard holds at most `capacity / shards` keys, so a collision
/// attack can only slow its own shard); for keys an adversary picks freely
/// and a stronger guarantee, give the map
/// [`std::collections::hash_map::RandomState`] with
/// [`KeyMap::with_hasher`].
///
/// [foldhash]: https://docs.rs/foldhash
///
/// ```
/// use std::hash::BuildHasher;
/// use seawall_core::key::KeyHasher;
///
/// let h = KeyHasher::default();
/// assert_eq!(h.hash_one("10.0.0.7:443"), h.hash_one("10.0.0.7:443"));
/// ```
#[derive(Clone, Default)]
pub struct KeyHasher(foldhash::fast::RandomState);

impl fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyHasher").finish_non_exhaustive()
    }
}

impl BuildHasher for KeyHasher {
    type Hasher = KeyHash;

    #[inline]
    fn build_hasher(&self) -> KeyHash {
        KeyHash(self.0.build_hasher())
    }
}

/// The [`Hasher`] a [`KeyHasher`] builds.
pub struct KeyHash(foldhash::fast::FoldHasher<'static>);

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyHash").finish_non_exhaustive()
    }
}

impl Hasher for KeyHash {
    #[inline]
    fn finish(&self) -> u64 {
        self.0.finish()
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.0.write(bytes)
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.0.write_u8(i)
    }

    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.0.write_u16(i)
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.0.write_u32(i)
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0.write_u64(i)
    }

    #[inline]
    fn write_u128(&mut self, i: u128) {
        self.0.write_u128(i)
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.0.write_usize(i)
    }
}

struct Entry<K, V> {
    hash: u64,
    key: K,
    value: Arc<V>,
    // When the key was last used, in the map's ticks (1/64 of the idle TTL).
    // A lookup writes it only when the tick has moved since, so a busy key
    // costs at most 64 writes a TTL; between those, its lookups only read.
    // 64 bits: ticks of a 1ms TTL (15.6µs) would fill 32 in 19 hours, and
    // the stamp costs no room (the entry is 8-aligned).
    used: AtomicU64,
}

struct Table<K, V> {
    entries: HashTable<Entry<K, V>>,
    // The CLOCK hand: the bucket the next insert starts examining at.
    hand: usize,
}

struct Shard<K, V> {
    // Entries carry their hash, computed once by the map's hasher: a lookup
    // hashes its key once, for both the shard and the bucket.
    table: RwLock<Table<K, V>>,
}

/// Buckets an insert examines for idle keys, and for a key to evict when
/// its shard is full; it examines up to [`FULL_SCAN`] when it finds none.
const SCAN: usize = 8;
/// The most buckets an insert into a full shard examines before it gives up
/// (and the caller falls back to its overflow state).
const FULL_SCAN: usize = 64;
/// Stamps per idle TTL.
const TICKS_PER_TTL: u64 = 64;

/// Decides whether a key's state may be forgotten; see [`KeyMap::evictable_when`].
type Evictable<V> = Box<dyn Fn(&V, u64) -> bool + Send + Sync>;
/// Told of every eviction; see [`KeyMap::on_evict`].
type OnEvict<K, V> = Box<dyn Fn(&K, &V) + Send + Sync>;

/// A bounded, sharded map from keys to shared per-key state, that holds
/// against keys chosen by an adversary.
///
/// The store behind every keyed seawall layer (per-peer breakers, budgets,
/// timeouts). Keys often come from requests, so whoever sends requests
/// chooses them; what the map guarantees holds whatever they choose:
///
/// - **Bounded**: never more than `capacity` keys. Keys are spread over up to
///   32 shards that hold `capacity / shards` keys each (one shard below 128
///   keys, so small capacities are exact).
/// - **Eviction never hands back a penalty.** A key may be evicted only while
///   its state equals a fresh key's, as the layer defines it with
///   [`evictable_when`](Self::evictable_when) (a budget key with tokens owed,
///   an open breaker, are not), and while no caller holds its value. When a
///   shard is full of keys that may not be evicted, an insert fails with
///   [`KeyMapFull`] rather than free a throttled key; keyed layers then give
///   the newcomer their one shared overflow state, as strict as a single key.
///   The protection ends when the state returns to fresh.
/// - **Eviction is O(1)**: an insert examines the next 8 keys (64 when its
///   shard is full and none of the first 8 may go) from a CLOCK hand that goes
///   round the shard, evicting idle keys it passes and, when the shard is
///   full, the least recently used evictable key it saw. A flood of
///   new keys costs each insert the same whatever the capacity, and lookups
///   of the shard wait on no scan.
/// - **Idle keys go**: a key unused for at least `idle_ttl` is evicted by the
///   first [`evict_idle`](Self::evict_idle) after, whatever happened before,
///   and by an insert whose hand passes it. Use is recorded in 64ths of the
///   TTL, so a key may go up to 1/32 of the TTL before it has been idle a whole
///   TTL; and the time a lookup records is the map's, which moves on every
///   insert and sweep, so in a map that sees neither for a while, a use in that
///   while counts as a use when it began (only ever earlier: an idle key is
///   never kept longer).
/// - **Cheap lookups**: an existing key costs one hash (by default the fast,
///   per-map seeded [`KeyHasher`]; choose another with
///   [`KeyMap::with_hasher`]), one read lock on its shard, two relaxed atomic
///   loads and an `Arc` clone; no allocation, no clock read.
///
/// ```
/// use seawall_core::{KeyMap, KeyMapConfig};
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let calls: KeyMap<String, AtomicU64> = KeyMap::new(KeyMapConfig::new().capacity(2));
/// for peer in ["a", "b", "a"] {
///     let counter = calls.get_or_insert_with(peer.to_string(), |_| AtomicU64::new(0)).unwrap();
///     counter.fetch_add(1, Ordering::Relaxed);
/// }
/// assert_eq!(calls.get("a").unwrap().load(Ordering::Relaxed), 2);
/// assert_eq!(calls.len(), 2);
/// # }
/// ```
pub struct KeyMap<K, V, S = KeyHasher> {
    shards: Box<[Shard<K, V>]>,
    hasher: S,
    per_shard: usize,
    config: KeyMapConfig,
    // The map's time, in ticks of `clock`: moved on by inserts and sweeps,
    // read by lookups.
    now: AtomicU64,
    clock: Clock,
    tick: u64,
    evictable: Option<Evictable<V>>,
    on_evict: Option<OnEvict<K, V>>,
}

impl<K, V, S> fmt::Debug for KeyMap<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyMap")
            .field("config", &self.config)
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq, V> KeyMap<K, V, KeyHasher> {
    /// An empty map with these bounds, hashing keys with a fresh
    /// [`KeyHasher`], reading tokio's clock (see [`clock`](Self::clock) for
    /// another). A capacity outside `1..=`[`MAX_CAPACITY`](crate::config::MAX_CAPACITY)
    /// is clamped into it, and an idle TTL into `1ms..=`[`MAX_DURATION`](crate::config::MAX_DURATION):
    /// validate the config first to report them.
    pub fn new(config: KeyMapConfig) -> Self {
        Self::with_hasher(config, KeyHasher::default())
    }
}

impl<K: Hash + Eq, V, S: BuildHasher> KeyMap<K, V, S> {
    /// An empty map that hashes keys with `hasher`.
    pub fn with_hasher(config: KeyMapConfig, hasher: S) -> Self {
        let capacity = config.capacity.clamp(1, crate::config::MAX_CAPACITY);
        let idle_ttl = config
            .idle_ttl
            .clamp(Duration::from_millis(1), crate::config::MAX_DURATION);
        let shards = if capacity < 128 {
            1
        } else {
            (capacity / 64).next_power_of_two().min(32)
        };
        let per_shard = capacity.div_ceil(shards);
        KeyMap {
            shards: (0..shards)
                .map(|_| Shard {
                    table: RwLock::new(Table {
                        entries: HashTable::new(),
                        hand: 0,
                    }),
                })
                .collect(),
            hasher,
            per_shard,
            config: KeyMapConfig {
                capacity: per_shard * shards,
                idle_ttl,
            },
            now: AtomicU64::new(0),
            clock: Clock::tokio(),
            tick: (crate::time::nanos(idle_ttl) / TICKS_PER_TTL).max(1),
            evictable: None,
            on_evict: None,
        }
    }

    /// Reads the time from `clock` instead of tokio's: give the map the
    /// layer's own clock, so that the `now` handed to
    /// [`evictable_when`](Self::evictable_when) is a reading of the clock the
    /// layer stamps its state with.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// A key may be evicted only while `evictable(value, now)` returns `true`,
    /// `now` being a reading of the map's [`clock`](Self::clock) in
    /// nanoseconds:
    /// while its state equals a fresh key's, so that forgetting it changes
    /// nothing (a budget key that owes no tokens, a closed breaker that has
    /// counted no failures). Without it, every key no caller holds may be
    /// evicted.
    ///
    /// It is called on the insert and sweep paths only, never on a lookup,
    /// with the time of the sweep; it must be quick and must not call back
    /// into the map (it runs under a shard's lock).
    pub fn evictable_when(
        mut self,
        evictable: impl Fn(&V, u64) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.evictable = Some(Box::new(evictable));
        self
    }

    /// Calls `f` with every key the map evicts (idle, or to make room), e.g.
    /// to remove the key's metric series. Not called for [`remove`](Self::remove).
    /// It runs under a shard's lock: it must be quick and must not call back
    /// into the map.
    pub fn on_evict(mut self, f: impl Fn(&K, &V) + Send + Sync + 'static) -> Self {
        self.on_evict = Some(Box::new(f));
        self
    }

    /// The bounds in force; the capacity is rounded up to a whole number of
    /// keys per shard.
    pub fn config(&self) -> KeyMapConfig {
        self.config
    }

    /// The key's hash, its bits spread by the splitmix64 finaliser. The
    /// hasher's own output can be badly skewed in the bits the shard index
    /// takes: with foldhash, about 1 process seed in 100 puts sequential
    /// integer keys (ports, ids) in a few shards, all 2048 of them in one at
    /// worst, which shrinks the map to a shard's capacity. Mixed, the worst
    /// of 20 000 seeds put 109 in one of 32 shards (64 expected).
    #[inline]
    fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        crate::rand::mix(self.hasher.hash_one(key))
    }

    #[inline]
    fn shard(&self, hash: u64) -> &Shard<K, V> {
        // `shards.len()` is a power of two; use the high bits, which the
        // table itself uses least.
        let i = (hash >> 40) as usize & (self.shards.len() - 1);
        &self.shards[i]
    }

    /// The value of `key`, if present; marks it used.
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Option<Arc<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let table = read(&self.shard(hash).table);
        table
            .entries
            .find(hash, |e| e.key.borrow() == key)
            .map(|e| self.touch(e))
    }

    /// The value of `key`, inserting `make(&key)` if it is absent.
    ///
    /// Inserting may evict keys of the same shard (see the type's docs); it
    /// fails only when the shard is full and the keys its insert examined
    /// may not be evicted (their state is not fresh, or a caller holds them).
    #[inline]
    pub fn get_or_insert_with(
        &self,
        key: K,
        make: impl FnOnce(&K) -> V,
    ) -> Result<Arc<V>, KeyMapFull> {
        let hash = self.hash(&key);
        let shard = self.shard(hash);
        if let Some(e) = read(&shard.table).entries.find(hash, |e| e.key == key) {
            return Ok(self.touch(e));
        }
        self.insert_with(shard, hash, key, make)
    }

    #[inline]
    fn touch(&self, e: &Entry<K, V>) -> Arc<V> {
        let now = self.now.load(Ordering::Relaxed);
        if e.used.load(Ordering::Relaxed) != now {
            e.used.store(now, Ordering::Relaxed);
        }
        e.value.clone()
    }

    // Reads the clock and moves the map's time on; returns both.
    fn advance(&self) -> (u64, u64) {
        let now = self.clock.nanos();
        let ticks = now / self.tick;
        self.now.fetch_max(ticks, Ordering::Relaxed);
        (now, ticks)
    }

    // An entry unused for at least a TTL, give or take a tick.
    fn idle(&self, e: &Entry<K, V>, ticks: u64) -> bool {
        ticks.saturating_sub(e.used.load(Ordering::Relaxed)) >= TICKS_PER_TTL - 1
    }

    // No caller holds it and its state equals a fresh key's.
    fn free(&self, e: &Entry<K, V>, now: u64) -> bool {
        Arc::strong_count(&e.value) == 1 && self.evictable.as_ref().is_none_or(|f| f(&e.value, now))
    }

    // The insert path, out of line so that a lookup of a known key (every
    // call but a key's first) stays small enough to inline.
    #[cold]
    #[inline(never)]
    fn insert_with(
        &self,
        shard: &Shard<K, V>,
        hash: u64,
        key: K,
        make: impl FnOnce(&K) -> V,
    ) -> Result<Arc<V>, KeyMapFull> {
        let (now, ticks) = self.advance();
        let mut table = write(&shard.table);
        if let Some(e) = table.entries.find(hash, |e| e.key == key) {
            return Ok(self.touch(e));
        }
        if !self.make_room(&mut table, now, ticks) {
            return Err(KeyMapFull {
                capacity: self.config.capacity,
            });
        }
        let value = Arc::new(make(&key));
        table.entries.insert_unique(
            hash,
            Entry {
                hash,
                key,
                value: value.clone(),
                used: AtomicU64::new(ticks),
            },
            |e| e.hash,
        );
        Ok(value)
    }

    // Moves the hand over the next SCAN keys (at most 4 × SCAN buckets),
    // evicting the idle keys it may; when the shard is still full, evicts the
    // least recently used evictable key among them, or among up to FULL_SCAN
    // keys when none of the first SCAN may go. `false` when the shard is full
    // and nothing examined could.
    //
    // Keys, not buckets, are counted: a table's keys need not be spread
    // evenly over its buckets, and a run of empty buckets must not pass for a
    // shard with nothing to evict. A full shard's table is at least about a
    // third full, so FULL_SCAN keys are found within a few hundred buckets.
    //
    // Only the entries' own words are read to choose (their stamps); the
    // value behind an entry's `Arc`, a cache miss in a large map, is read
    // only for the keys about to be evicted.
    fn make_room(&self, table: &mut Table<K, V>, now: u64, ticks: u64) -> bool {
        let buckets = table.entries.num_buckets();
        if buckets == 0 {
            return true;
        }
        let mut next = table.hand;
        let mut examined = 0;
        let mut keys = 0;
        let mut limit = SCAN;
        loop {
            // (last use, bucket) of the live keys examined in this pass.
            let mut seen = [(0u64, 0usize); FULL_SCAN];
            let mut n = 0;
            while keys < limit && examined < buckets {
                if limit == SCAN && examined >= 4 * SCAN && table.entries.len() < self.per_shard {
                    break;
                }
                let i = next;
                next = (next + 1) % buckets;
                examined += 1;
                let Some(e) = table.entries.get_bucket(i) else {
                    continue;
                };
                keys += 1;
                if self.idle(e, ticks) && self.free(e, now) {
                    self.evict_bucket(table, i);
                } else {
                    seen[n] = (e.used.load(Ordering::Relaxed), i);
                    n += 1;
                }
            }
            if limit == SCAN {
                table.hand = next;
            }
            if table.entries.len() < self.per_shard {
                return true;
            }
            let seen = &mut seen[..n];
            seen.sort_unstable();
            let victim = seen.iter().find(|&&(_, i)| {
                table
                    .entries
                    .get_bucket(i)
                    .is_some_and(|e| self.free(e, now))
            });
            if let Some(&(_, i)) = victim {
                self.evict_bucket(table, i);
                return true;
            }
            if limit == FULL_SCAN || examined >= buckets {
                return false;
            }
            limit = FULL_SCAN;
        }
    }

    fn evict_bucket(&self, table: &mut Table<K, V>, bucket: usize) {
        if let Ok(entry) = table.entries.get_bucket_entry(bucket) {
            let (e, _) = entry.remove();
            if let Some(f) = &self.on_evict {
                f(&e.key, &e.value);
            }
        }
    }

    /// Removes `key`, returning its value.
    pub fn remove<Q>(&self, key: &Q) -> Option<Arc<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let mut table = write(&self.shard(hash).table);
        let entry = table
            .entries
            .find_entry(hash, |e| e.key.borrow() == key)
            .ok()?;
        Some(entry.remove().0.value)
    }

    /// Evicts every key that has been idle for at least `idle_ttl` and may be
    /// evicted (its state is fresh, no caller holds it); returns how many.
    /// Call it from a periodic task if the map may go long without inserts
    /// and idle state should not linger.
    ///
    /// Each shard is scanned under its read lock, so lookups go on meanwhile;
    /// the write lock is held only to remove what the scan found.
    pub fn evict_idle(&self) -> usize {
        let (now, ticks) = self.advance();
        let mut found = Vec::new();
        let mut evicted = 0;
        for shard in self.shards.iter() {
            found.clear();
            found.extend(
                read(&shard.table)
                    .entries
                    .iter()
                    .filter(|e| self.idle(e, ticks) && self.free(e, now))
                    .map(|e| (e.hash, e as *const Entry<K, V>)),
            );
            if found.is_empty() {
                continue;
            }
            let mut table = write(&shard.table);
            for &(hash, ptr) in &found {
                // Comparing addresses only; the pointer is never dereferenced.
                // An entry moved by a rehash since the scan is not found and
                // is left to the next sweep; one used since is not idle.
                let Ok(entry) = table.entries.find_entry(hash, |e| std::ptr::eq(e, ptr)) else {
                    continue;
                };
                if !(self.idle(entry.get(), ticks) && self.free(entry.get(), now)) {
                    continue;
                }
                let (e, _) = entry.remove();
                if let Some(f) = &self.on_evict {
                    f(&e.key, &e.value);
                }
                evicted += 1;
            }
        }
        evicted
    }

    /// How many keys the map holds.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| read(&s.table).entries.len())
            .sum()
    }

    /// `true` when the map holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `f` with every key and value. Takes each shard's read lock in
    /// turn, so `f` must not call back into the map; does not mark keys used.
    pub fn for_each(&self, mut f: impl FnMut(&K, &V)) {
        for shard in self.shards.iter() {
            for e in read(&shard.table).entries.iter() {
                f(&e.key, &e.value);
            }
        }
    }
}

// A lock is poisoned only by a panic while it was held. The map's own code
// does not panic under its locks and runs the caller's `make` before it
// changes the table, so the table is consistent either way: keep going.
fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    fn map(capacity: usize, ttl_secs: u64) -> KeyMap<u32, AtomicU32> {
        KeyMap::new(
            KeyMapConfig::new()
                .capacity(capacity)
                .idle_ttl(Duration::from_secs(ttl_secs)),
        )
    }

    fn put(m: &KeyMap<u32, AtomicU32>, k: u32) -> Result<Arc<AtomicU32>, KeyMapFull> {
        m.get_or_insert_with(k, |k| AtomicU32::new(*k))
    }

    #[tokio::test(start_paused = true)]
    async fn small_capacities_are_exact() {
        let m = map(3, 60);
        for k in 0..3 {
            put(&m, k).unwrap();
        }
        assert_eq!(m.len(), 3);
        put(&m, 3).unwrap();
        assert_eq!(m.len(), 3, "a full map evicts to insert");
        assert!(m.get(&3).is_some(), "the new key is in");
    }

    #[test]
    fn a_manual_clock_drives_idle_eviction_without_a_runtime() {
        let (clock, hand) = Clock::manual();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let told = seen.clone();
        let m: KeyMap<u32, AtomicU32> = KeyMap::new(
            KeyMapConfig::new()
                .capacity(8)
                .idle_ttl(Duration::from_secs(10)),
        )
        .clock(clock)
        .evictable_when(move |_, now| {
            told.lock().unwrap().push(now);
            true
        });
        put(&m, 1).unwrap();
        hand.advance(Duration::from_secs(9));
        assert_eq!(m.evict_idle(), 0, "nothing is idle before a TTL");
        hand.advance(Duration::from_secs(1));
        assert_eq!(m.evict_idle(), 1);
        assert!(m.is_empty());
        // The layer's callback sees readings of the same clock.
        assert_eq!(seen.lock().unwrap().last(), Some(&10_000_000_000));
    }

    #[test]
    fn idle_eviction_still_works_after_a_long_uptime() {
        // A 1ms TTL ticks every 15.6µs: 32-bit stamps would have filled up
        // after 19 hours and stopped every idle eviction.
        let (clock, hand) = Clock::manual();
        let m: KeyMap<u32, AtomicU32> = KeyMap::new(
            KeyMapConfig::new()
                .capacity(8)
                .idle_ttl(Duration::from_millis(1)),
        )
        .clock(clock);
        hand.advance(Duration::from_secs(365 * 86_400));
        put(&m, 1).unwrap();
        assert_eq!(m.evict_idle(), 0, "just used");
        hand.advance(Duration::from_millis(1));
        assert_eq!(m.evict_idle(), 1);
        assert!(m.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn existing_keys_keep_their_value() {
        let m = map(4, 60);
        put(&m, 1).unwrap().store(99, Ordering::Relaxed);
        assert_eq!(put(&m, 1).unwrap().load(Ordering::Relaxed), 99);
        assert_eq!(m.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_least_recently_used_key_makes_room() {
        let m = map(3, 60);
        for k in 0..3 {
            put(&m, k).unwrap();
            tokio::time::advance(Duration::from_secs(2)).await;
        }
        // 0 is used again (at the map's time, that of the last insert), so 1
        // is now the least recently used.
        m.get(&0).unwrap();
        tokio::time::advance(Duration::from_secs(2)).await;
        put(&m, 7).unwrap();
        assert!(m.get(&1).is_none());
        assert!(m.get(&0).is_some() && m.get(&2).is_some() && m.get(&7).is_some());
        assert_eq!(m.len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn keys_idle_for_a_ttl_are_evicted_on_insert() {
        let m = map(100, 10);
        put(&m, 1).unwrap();
        put(&m, 2).unwrap();
        tokio::time::advance(Duration::from_secs(9)).await;
        put(&m, 3).unwrap();
        assert_eq!(m.len(), 3, "nothing is idle before a TTL");
        tokio::time::advance(Duration::from_secs(1)).await;
        m.get(&3).unwrap();
        put(&m, 4).unwrap();
        // The hand passed every bucket of this small table: 1 and 2 were
        // unused for a whole TTL, 3 was used 1s ago.
        let mut left = Vec::new();
        m.for_each(|k, _| left.push(*k));
        left.sort();
        assert_eq!(left, [3, 4]);
    }

    #[tokio::test(start_paused = true)]
    async fn keys_idle_past_their_ttl_go_at_the_first_sweep_whatever_came_before() {
        // The old map cleared a "used" flag at each sweep, so with no sweep
        // while they were idle the first one evicted nothing.
        let m = map(100_000, 10);
        for k in 0..100_000 {
            put(&m, k).unwrap();
        }
        let held = m.len();
        assert!(held > 99_000, "{held}");
        tokio::time::advance(Duration::from_secs(21)).await;
        assert_eq!(m.evict_idle(), held);
        assert!(m.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_used_within_its_ttl_stays() {
        let m = map(100, 64);
        put(&m, 1).unwrap();
        put(&m, 2).unwrap();
        for _ in 0..10 {
            tokio::time::advance(Duration::from_secs(60)).await;
            m.evict_idle(); // moves the map's time on
            m.get(&1).unwrap();
        }
        assert!(m.get(&1).is_some(), "used every 60s of a 64s TTL");
        assert!(m.get(&2).is_none());
        // Never before TTL - TTL/32: at 61s it is still there.
        let m = map(100, 64);
        put(&m, 1).unwrap();
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(m.evict_idle(), 0);
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(m.evict_idle(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn keys_that_are_not_fresh_are_never_evicted() {
        // Odd values are not fresh, like a budget key that owes tokens.
        let m = map(2, 1)
            .evictable_when(|v: &AtomicU32, _| v.load(Ordering::Relaxed).is_multiple_of(2));
        put(&m, 1).unwrap();
        let held = put(&m, 2).unwrap();
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(m.evict_idle(), 0, "1 is not fresh, 2 is held");
        let err = put(&m, 3).unwrap_err();
        assert_eq!(err, KeyMapFull { capacity: 2 });
        assert_eq!(
            err.to_string(),
            "key map full: all 2 keys are in use or may not be evicted"
        );
        drop(held);
        put(&m, 3).unwrap();
        assert!(m.get(&2).is_none());
        assert!(m.get(&1).is_some());
        // Fresh again: it may go.
        m.get(&1).unwrap().store(4, Ordering::Relaxed);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(m.evict_idle(), 1);
        assert!(m.get(&1).is_none());
        assert!(m.get(&3).is_some(), "3 is odd: not fresh");
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_of_new_keys_never_evicts_a_protected_key() {
        // The bypass: a throttled key, evicted to make room for junk keys,
        // came back with a full burst. Here it stays, whatever the flood.
        let m = map(100, 3600).evictable_when(|v: &AtomicU32, _| v.load(Ordering::Relaxed) != 1);
        put(&m, 1).unwrap(); // value 1: "owes tokens"
        for k in 1_000..101_000 {
            let _ = put(&m, k);
        }
        assert_eq!(m.get(&1).unwrap().load(Ordering::Relaxed), 1);
        assert!(m.len() <= 100);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_shard_finds_its_keys_however_they_lie_in_the_table() {
        // A hand that takes its victims near itself can leave runs of empty
        // buckets; counting buckets instead of keys, an insert then saw
        // nothing to evict in a map full of evictable keys, and refused (seen
        // through the keyed breaker in about one run in four; the breaker's
        // flood tests assert it too).
        for _ in 0..10 {
            let m = map(100, 3600);
            for k in 0..20_000u32 {
                assert!(put(&m, k).is_ok(), "key {k} refused");
            }
            assert_eq!(m.len(), 100);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn evictions_are_reported() {
        let evicted = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = evicted.clone();
        let m = map(2, 10).on_evict(move |k, _| seen.lock().unwrap().push(*k));
        put(&m, 1).unwrap();
        put(&m, 2).unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        put(&m, 3).unwrap();
        tokio::time::advance(Duration::from_secs(10)).await;
        m.evict_idle();
        let mut evicted = evicted.lock().unwrap().clone();
        evicted.sort();
        assert_eq!(evicted, [1, 2, 3]);
        assert!(m.remove(&9).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn large_capacities_shard_and_stay_bounded() {
        let m = map(10_000, 60);
        assert!(m.config().capacity >= 10_000);
        for k in 0..50_000 {
            put(&m, k).unwrap();
        }
        assert!(m.len() <= m.config().capacity);
        assert!(m.len() > 9_000, "shards fill evenly enough: {}", m.len());
    }

    #[tokio::test(start_paused = true)]
    async fn remove_and_is_empty() {
        let m = map(4, 60);
        assert!(m.is_empty());
        put(&m, 1).unwrap();
        assert_eq!(m.remove(&1).unwrap().load(Ordering::Relaxed), 1);
        assert!(m.remove(&1).is_none());
        assert!(m.is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_tasks_share_one_value_per_key() {
        let m = Arc::new(map(1_000, 60));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let m = m.clone();
                tokio::spawn(async move {
                    for i in 0..2_000u32 {
                        put(&m, i % 100).unwrap().fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let mut total = 0u64;
        m.for_each(|k, v| total += u64::from(v.load(Ordering::Relaxed) - k));
        assert_eq!(total, 8 * 2_000);
        assert_eq!(m.len(), 100);
    }

    #[tokio::test(start_paused = true)]
    async fn any_hasher_can_be_chosen() {
        use std::collections::hash_map::RandomState;
        let m: KeyMap<String, u32, RandomState> =
            KeyMap::with_hasher(KeyMapConfig::new().capacity(4), RandomState::new());
        m.get_or_insert_with("a".to_owned(), |_| 1).unwrap();
        assert_eq!(m.get("a").as_deref(), Some(&1));
        assert!(m.get("b").is_none());
    }

    #[test]
    fn the_default_hasher_is_seeded_per_map() {
        let (a, b) = (KeyHasher::default(), KeyHasher::default());
        // Equal keys hash equally within one map, through `Borrow` too.
        assert_eq!(a.hash_one("peer-1"), a.hash_one("peer-1".to_owned()));
        assert_eq!(a.hash_one(7u64), a.hash_one(7u64));
        // Two maps disagree on (almost) every key: no fixed seed to target.
        let differ = (0..64u64)
            .filter(|k| a.hash_one(k) != b.hash_one(k))
            .count();
        assert!(differ >= 60, "{differ} of 64 keys hashed differently");
    }

    #[tokio::test(start_paused = true)]
    async fn a_skewed_hasher_still_spreads_keys_over_every_shard() {
        // foldhash with this process seed puts all 2048 sequential keys in
        // one shard by the hash's own bits 40..45; the mixed hash spreads them.
        static SKEWED: foldhash::SharedSeed = foldhash::SharedSeed::from_u64(10_029);
        let hasher = foldhash::fast::SeedableRandomState::with_seed(0, &SKEWED);
        let m: KeyMap<u32, AtomicU32, _> = KeyMap::with_hasher(
            KeyMapConfig::new()
                .capacity(32 * 64)
                .idle_ttl(Duration::from_secs(60)),
            hasher,
        );
        for k in 0..2_048 {
            m.get_or_insert_with(k, |k| AtomicU32::new(*k)).unwrap();
        }
        assert!(m.len() > 1_700, "{} of 2048 kept", m.len());
    }

    #[tokio::test(start_paused = true)]
    async fn the_default_hasher_spreads_keys_over_every_shard() {
        // 32 shards of 64 keys; 2048 sequential keys must fill every shard
        // closely enough that few inserts evict.
        let m = map(32 * 64, 60);
        for k in 0..2_048 {
            put(&m, k).unwrap();
        }
        assert!(m.len() > 1_700, "{} of 2048 kept", m.len());
    }

    #[test]
    fn bad_config_is_an_error() {
        let err = KeyMapConfig::new()
            .capacity(0)
            .idle_ttl(Duration::ZERO)
            .validate()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "capacity: 0 must be greater than zero; idle_ttl: 0s must be longer than zero"
        );
    }

    #[tokio::test]
    async fn hostile_capacities_are_errors_and_never_overflow() {
        let err = KeyMapConfig::new()
            .capacity(usize::MAX)
            .idle_ttl(Duration::from_secs(u64::MAX))
            .validate()
            .unwrap_err();
        assert_eq!(err.errors().len(), 2, "{err}");
        assert_eq!(err.field(), "capacity");
        // Unvalidated, the map clamps instead of overflowing (it used to
        // panic in debug and wrap to capacity 0 in release).
        let map: KeyMap<u64, ()> = KeyMap::new(KeyMapConfig::new().capacity(usize::MAX));
        assert_eq!(map.config().capacity, crate::config::MAX_CAPACITY);
        map.get_or_insert_with(1, |_| ()).unwrap();
        assert_eq!(map.len(), 1);
    }
}

// Model checks of the races above: `--cfg seawall_loom` (see the crate docs).
#[cfg(all(test, seawall_loom))]
mod loom_models;
