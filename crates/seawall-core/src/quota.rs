//! What a rate budget tells the client about its quota: the IETF
//! `RateLimit-Policy` and `RateLimit` header fields, without a second look
//! at the budget.
//!
//! A budget that admits or refuses a call knows, at that moment, how much
//! of its quota is left. When something up the stack is listening (an
//! [`observe`] call is running on this thread: the facade's axum
//! `RateLimitHeadersLayer` polls the rest of the stack inside one), the
//! budget [`report`]s a [`Quota`]; otherwise it pays one thread-local read
//! per call and reports nothing.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use seawall_core::quota::{self, Quota, Quotas};
//!
//! let policy: Arc<str> = Arc::from("per-client");
//! let mut quotas = Quotas::default();
//! quota::observe(&mut quotas, || {
//!     // Deep in the stack, a budget admits a call.
//!     if quota::is_observed() {
//!         quota::report(Quota::new(policy.clone(), 100, Duration::from_secs(60))
//!             .remaining(42)
//!             .reset(Duration::from_secs(35)));
//!     }
//! });
//! let reported: Vec<_> = quotas.iter().collect();
//! assert_eq!(reported.len(), 1);
//! assert_eq!(reported[0].policy(), "per-client");
//! assert_eq!(reported[0].remaining_units(), 42);
//! // Nobody listens here: nothing is kept.
//! assert!(!quota::is_observed());
//! ```

use std::cell::{Cell, RefCell};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The most quotas one call reports; a fifth distinct policy is dropped.
pub const MAX_QUOTAS: usize = 4;

/// One budget's quota, as it stood when it admitted or refused a call.
#[derive(Clone, PartialEq, Eq)]
pub struct Quota {
    policy: Arc<str>,
    limit: u32,
    window: Duration,
    remaining: u32,
    reset: Duration,
}

impl Quota {
    /// A quota of `limit` units every `window`, under the policy name
    /// `policy` (the budget's name), with nothing said yet about what is
    /// left: [`remaining`](Quota::remaining) and [`reset`](Quota::reset)
    /// are 0.
    pub fn new(policy: Arc<str>, limit: u32, window: Duration) -> Self {
        Quota {
            policy,
            limit,
            window,
            remaining: 0,
            reset: Duration::ZERO,
        }
    }

    /// Units the client may still use now.
    pub fn remaining(mut self, remaining: u32) -> Self {
        self.remaining = remaining;
        self
    }

    /// How long until the quota is whole again.
    pub fn reset(mut self, reset: Duration) -> Self {
        self.reset = reset;
        self
    }

    /// The policy's name.
    pub fn policy(&self) -> &str {
        &self.policy
    }

    /// Units per window.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Units left.
    pub fn remaining_units(&self) -> u32 {
        self.remaining
    }

    /// Time until the quota is whole again.
    pub fn reset_after(&self) -> Duration {
        self.reset
    }
}

impl fmt::Debug for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Quota")
            .field("policy", &crate::key::Escaped(&*self.policy))
            .field("limit", &self.limit)
            .field("window", &self.window)
            .field("remaining", &self.remaining)
            .field("reset", &self.reset)
            .finish()
    }
}

/// The quotas reported during an [`observe`]: at most [`MAX_QUOTAS`], one
/// per budget (a later report by the same budget, say for a retried call,
/// replaces its earlier one). A budget is known by its policy's `Arc`, not
/// its name: two budgets that share a name are two entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quotas {
    slots: [Option<Quota>; MAX_QUOTAS],
}

impl Quotas {
    /// The quotas, in the order their policies first reported.
    pub fn iter(&self) -> impl Iterator<Item = &Quota> {
        self.slots.iter().flatten()
    }

    /// Whether nothing was reported.
    pub fn is_empty(&self) -> bool {
        self.slots[0].is_none()
    }

    fn push(&mut self, quota: Quota) {
        for slot in &mut self.slots {
            match slot {
                Some(held) if Arc::ptr_eq(&held.policy, &quota.policy) => {
                    *held = quota;
                    return;
                }
                Some(_) => {}
                None => {
                    *slot = Some(quota);
                    return;
                }
            }
        }
    }
}

thread_local! {
    static OBSERVER: RefCell<Option<Quotas>> = const { RefCell::new(None) };
    // Whether `OBSERVER` holds quotas, apart: a `Cell<bool>` has no
    // destructor, so reading it is one load, with no check that the
    // thread's destructors are registered.
    static OBSERVED: Cell<bool> = const { Cell::new(false) };
}

/// Whether a call on this thread is being observed: a budget reports only
/// then. One thread-local load.
#[inline]
pub fn is_observed() -> bool {
    OBSERVED.with(Cell::get)
}

/// Reports `quota` to the [`observe`] running on this thread, if any.
pub fn report(quota: Quota) {
    OBSERVER.with(|o| {
        if let Ok(mut o) = o.try_borrow_mut()
            && let Some(quotas) = o.as_mut()
        {
            quotas.push(quota);
        }
    });
}

/// Runs `f`, collecting into `quotas` what budgets [`report`] meanwhile on
/// this thread. Call it around each poll of a request's future (a budget
/// usually decides during a poll, when a wrapper such as axum's
/// `HandleError` calls it). Nested calls each collect their own; the outer
/// one gets nothing reported inside the inner one.
pub fn observe<R>(quotas: &mut Quotas, f: impl FnOnce() -> R) -> R {
    struct Restore<'a> {
        quotas: &'a mut Quotas,
        previous: Option<Quotas>,
    }
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            let previous = self.previous.take();
            OBSERVED.with(|o| o.set(previous.is_some()));
            let ours = OBSERVER.with(|o| o.replace(previous));
            *self.quotas = ours.unwrap_or_default();
        }
    }
    let previous = OBSERVER.with(|o| o.replace(Some(std::mem::take(quotas))));
    OBSERVED.with(|o| o.set(true));
    let _restore = Restore { quotas, previous };
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(policy: &str, remaining: u32) -> Quota {
        Quota::new(Arc::from(policy), 10, Duration::from_secs(1)).remaining(remaining)
    }

    #[test]
    fn one_slot_per_budget_even_when_names_clash() {
        let a: Arc<str> = Arc::from("default");
        let b: Arc<str> = Arc::from("default");
        let mut quotas = Quotas::default();
        observe(&mut quotas, || {
            report(Quota::new(a.clone(), 5, Duration::from_secs(60)).remaining(1));
            report(Quota::new(b.clone(), 100, Duration::from_secs(60)).remaining(96));
            report(Quota::new(a.clone(), 5, Duration::from_secs(60)).remaining(0));
        });
        let seen: Vec<_> = quotas
            .iter()
            .map(|q| (q.limit(), q.remaining_units()))
            .collect();
        assert_eq!(
            seen,
            [(5, 0), (100, 96)],
            "the tighter budget is not hidden"
        );
    }

    #[test]
    fn nothing_is_kept_without_an_observer() {
        report(quota("a", 1));
        let mut quotas = Quotas::default();
        observe(&mut quotas, || {});
        assert!(quotas.is_empty());
    }

    #[test]
    fn one_slot_per_budget_and_at_most_four() {
        let mut quotas = Quotas::default();
        let a: Arc<str> = Arc::from("a");
        observe(&mut quotas, || {
            assert!(is_observed());
            report(Quota::new(a.clone(), 10, Duration::from_secs(1)).remaining(5));
            report(quota("b", 5));
            report(Quota::new(a.clone(), 10, Duration::from_secs(1)).remaining(4));
            for p in ["c", "d", "e"] {
                report(quota(p, 1));
            }
        });
        let seen: Vec<_> = quotas
            .iter()
            .map(|q| (q.policy().to_owned(), q.remaining_units()))
            .collect();
        assert_eq!(
            seen,
            [("a", 4), ("b", 5), ("c", 1), ("d", 1)].map(|(p, r)| (p.to_owned(), r))
        );
        assert!(!is_observed());
    }

    #[test]
    fn nested_observers_each_get_their_own_and_keep_across_polls() {
        let mut outer = Quotas::default();
        let mut inner = Quotas::default();
        observe(&mut outer, || {
            report(quota("outer", 1));
            observe(&mut inner, || report(quota("inner", 2)));
            assert!(is_observed());
        });
        // A second poll of the same request adds to what the first got.
        observe(&mut outer, || report(quota("later", 3)));
        let names: Vec<_> = outer.iter().map(|q| q.policy().to_owned()).collect();
        assert_eq!(names, ["outer", "later"]);
        assert_eq!(inner.iter().count(), 1);
    }

    #[test]
    fn a_panic_inside_restores_the_observer() {
        let mut quotas = Quotas::default();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            observe(&mut quotas, || {
                report(quota("a", 1));
                panic!("boom");
            })
        }));
        assert!(caught.is_err());
        assert!(!is_observed());
        assert_eq!(quotas.iter().count(), 1);
    }
}
