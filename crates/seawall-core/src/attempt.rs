//! Which attempt of a request a service is being called for: the link
//! between a layer that sends a request more than once (a hedge) and a
//! layer below it that picks a peer (`seawall_breaker::PeerSelect`), so
//! that the second attempt goes to another peer than the first.
//!
//! The scope is per thread and lives only for the duration of one
//! `Service::call`: the sending layer wraps its inner `call` in
//! [`scope`], a peer-picking layer reads [`avoid`] and reports its pick
//! with [`note_peer`] *inside* that `call`, and [`scope`] hands the pick
//! back. Nothing outlives the call, nothing is allocated (a thread-local
//! `Cell` of two words), and a layer that knows nothing of it is unaffected.
//!
//! A peer is named by a slot number meaningful only to the layer that
//! picked it (an index into its peer set); a set that changes between two
//! attempts may make the avoidance miss, never fail.
//!
//! ```
//! use seawall_core::attempt::{self, Attempt};
//!
//! // The picking layer, inside its `call`:
//! fn pick(peers: usize) -> usize {
//!     let slot = (0..peers).find(|&i| attempt::avoid() != Some(i)).unwrap_or(0);
//!     attempt::note_peer(slot);
//!     slot
//! }
//!
//! // The hedging layer: the first attempt, then a hedge avoiding its peer.
//! let (first, peer) = attempt::scope(Attempt::first(), || pick(2));
//! assert_eq!((first, peer), (0, Some(0)));
//! let (hedge, _) = attempt::scope(Attempt::hedge(1, peer), || pick(2));
//! assert_eq!(hedge, 1);
//! // Outside a scope nothing is avoided and nothing is kept.
//! assert_eq!(attempt::avoid(), None);
//! ```

use std::cell::Cell;

/// One attempt of a request, as its sending layer describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Attempt {
    index: u32,
    avoid: Option<usize>,
}

impl Attempt {
    /// The first attempt of a request: nothing to avoid.
    pub const fn first() -> Self {
        Attempt {
            index: 0,
            avoid: None,
        }
    }

    /// Attempt number `index` (1 for the first hedge), which should avoid
    /// the peer in slot `avoid` (the one the first attempt went to) if
    /// another healthy peer exists.
    pub const fn hedge(index: u32, avoid: Option<usize>) -> Self {
        Attempt { index, avoid }
    }

    /// 0 for the first attempt, 1 for the first hedge, ...
    pub const fn index(&self) -> u32 {
        self.index
    }

    /// The peer slot this attempt should avoid.
    pub const fn avoid(&self) -> Option<usize> {
        self.avoid
    }
}

#[derive(Clone, Copy)]
struct Scope {
    attempt: Option<Attempt>,
    picked: Option<usize>,
}

thread_local! {
    static SCOPE: Cell<Scope> = const { Cell::new(Scope { attempt: None, picked: None }) };
}

/// Runs `call` (a service's `call`) as `attempt`, and returns its result
/// with the peer slot a layer below reported through [`note_peer`], if any.
/// Scopes nest (the outer one is restored afterwards), and a panic in
/// `call` leaves at worst a stale scope that the next [`scope`] replaces.
#[inline]
pub fn scope<R>(attempt: Attempt, call: impl FnOnce() -> R) -> (R, Option<usize>) {
    let outer = SCOPE.with(|s| {
        s.replace(Scope {
            attempt: Some(attempt),
            picked: None,
        })
    });
    let r = call();
    let inner = SCOPE.with(|s| s.replace(outer));
    (r, inner.picked)
}

/// The attempt whose `call` is running on this thread, if a sending layer
/// set one.
#[inline]
pub fn current() -> Option<Attempt> {
    SCOPE.with(|s| s.get().attempt)
}

/// The peer slot the running attempt should avoid, if any.
#[inline]
pub fn avoid() -> Option<usize> {
    current().and_then(|a| a.avoid)
}

/// Reports the peer slot picked for the running attempt (ignored outside
/// a [`scope`]).
#[inline]
pub fn note_peer(slot: usize) {
    SCOPE.with(|s| {
        let mut scope = s.get();
        if scope.attempt.is_some() {
            scope.picked = Some(slot);
            s.set(scope);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_outside_a_scope() {
        note_peer(3);
        assert_eq!(current(), None);
        let ((), picked) = scope(Attempt::first(), || ());
        assert_eq!(picked, None, "a note outside the scope is not kept");
    }

    #[test]
    fn scopes_nest() {
        let (inner, outer_pick) = scope(Attempt::hedge(1, Some(4)), || {
            assert_eq!(avoid(), Some(4));
            let (_, inner_pick) = scope(Attempt::first(), || {
                assert_eq!(avoid(), None);
                note_peer(1);
            });
            assert_eq!(avoid(), Some(4), "the outer scope is back");
            note_peer(2);
            inner_pick
        });
        assert_eq!(inner, Some(1));
        assert_eq!(outer_pick, Some(2));
        assert_eq!(current(), None);
    }
}
