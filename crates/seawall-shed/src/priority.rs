//! Request priorities: who is shed first.

/// How important a request is; lower priorities are shed first.
///
/// | priority | shed when (`n` = requests in flight when it arrives) |
/// |----------|------------------------------------------------------|
/// | `Critical` | only at the limit itself (`n >= limit`); may use the critical headroom; never shed at random |
/// | `Normal` (default) | `n >= limit - headroom`, or at random in the probabilistic band above `soft_limit` |
/// | `Sheddable` | like `Normal`, and always once `n >= soft_limit` (it is the first to go) |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Priority {
    /// Work that may be dropped first (prefetches, batch jobs, retries).
    Sheddable,
    /// Ordinary work.
    #[default]
    Normal,
    /// Work that must get through (health checks, control traffic, payments).
    Critical,
}

impl Priority {
    /// A stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Sheddable => "sheddable",
            Priority::Normal => "normal",
            Priority::Critical => "critical",
        }
    }
}

/// Takes a request's [`Priority`] out of it; implemented for every
/// `Fn(&Req) -> Priority` and for [`NoPriority`].
pub trait PriorityFn<Req> {
    /// The priority of `req`.
    fn priority(&self, req: &Req) -> Priority;
}

impl<Req, F> PriorityFn<Req> for F
where
    F: Fn(&Req) -> Priority,
{
    fn priority(&self, req: &Req) -> Priority {
        self(req)
    }
}

/// The default: every request is [`Priority::Normal`].
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPriority;

impl<Req> PriorityFn<Req> for NoPriority {
    fn priority(&self, _: &Req) -> Priority {
        Priority::Normal
    }
}
