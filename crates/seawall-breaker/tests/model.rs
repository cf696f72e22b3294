//! Property tests: random sequences of calls, held probes, cancellations and
//! time steps, run through the breaker and a simple reference model. The
//! breaker reads a manual clock: no runtime is made per case.

use std::collections::VecDeque;
use std::time::Duration;

use proptest::prelude::*;
use seawall_breaker::{CircuitBreaker, Permit, State, TripPolicy};
use seawall_core::{Clock, Outcome};

const THRESHOLD: u32 = 3;
const OPEN_MS: u64 = 100;
const MAX_PROBES: u32 = 2;
const SUCCESSES: u32 = 2;

#[derive(Debug, Clone)]
enum Op {
    Call(bool),
    Start,
    Finish(usize, bool),
    Cancel(usize),
    Advance(u64),
    ForceOpen,
    ForceClosed,
    Reset,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => any::<bool>().prop_map(Op::Call),
        2 => Just(Op::Start),
        2 => (0..4usize, any::<bool>()).prop_map(|(i, ok)| Op::Finish(i, ok)),
        1 => (0..4usize).prop_map(Op::Cancel),
        3 => (0..150u64).prop_map(Op::Advance),
        1 => Just(Op::ForceOpen),
        1 => Just(Op::ForceClosed),
        1 => Just(Op::Reset),
    ]
}

/// The reference: the state machine written the obvious way.
struct Model {
    state: State,
    generation: u64,
    failures: u32,
    open_until: u64,
    in_flight: u32,
    successes: u32,
    now: u64,
}

impl Model {
    fn enter(&mut self, s: State) {
        self.state = s;
        self.generation += 1;
        self.in_flight = 0;
        self.successes = 0;
        self.failures = 0;
        if s == State::Open {
            self.open_until = self.now + OPEN_MS;
        }
    }

    // Some((generation, probe)) when admitted.
    fn acquire(&mut self) -> Option<(u64, bool)> {
        match self.state {
            State::Closed | State::ForcedClosed => Some((self.generation, false)),
            State::ForcedOpen => None,
            State::Open if self.now < self.open_until => None,
            State::Open | State::HalfOpen => {
                if self.state == State::Open {
                    self.enter(State::HalfOpen);
                }
                (self.in_flight < MAX_PROBES).then(|| {
                    self.in_flight += 1;
                    (self.generation, true)
                })
            }
        }
    }

    // What a reader sees: an open breaker whose open period is over is
    // half-open.
    fn observe(&mut self) -> State {
        if self.state == State::Open && self.now >= self.open_until {
            self.enter(State::HalfOpen);
        }
        self.state
    }

    fn finish(&mut self, (generation, probe): (u64, bool), ok: Option<bool>) {
        if generation != self.generation {
            return;
        }
        if probe {
            self.in_flight -= 1;
            match ok {
                Some(true) => {
                    self.successes += 1;
                    if self.successes >= SUCCESSES {
                        self.enter(State::Closed);
                    }
                }
                Some(false) => self.enter(State::Open),
                None => {}
            }
        } else if self.state == State::Closed {
            match ok {
                Some(true) => self.failures = 0,
                Some(false) => {
                    self.failures += 1;
                    if self.failures >= THRESHOLD {
                        self.enter(State::Open);
                    }
                }
                None => {}
            }
        }
    }
}

fn outcome(ok: bool) -> Outcome {
    if ok {
        Outcome::Success
    } else {
        Outcome::Failure
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let (clock, hand) = Clock::manual();
    {
        let b = CircuitBreaker::builder()
            .clock(clock)
            .policy(TripPolicy::consecutive_failures(THRESHOLD))
            .open_duration(Duration::from_millis(OPEN_MS))
            .half_open_max_calls(MAX_PROBES)
            .success_threshold(SUCCESSES)
            .build_breaker()
            .unwrap();
        let mut m = Model {
            state: State::Closed,
            generation: 0,
            failures: 0,
            open_until: 0,
            in_flight: 0,
            successes: 0,
            now: 0,
        };
        let mut held: VecDeque<(Permit<'static>, (u64, bool))> = VecDeque::new();
        for op in ops {
            match op {
                Op::Call(ok) => {
                    let real = b.try_acquire_owned();
                    let model = m.acquire();
                    prop_assert_eq!(real.is_ok(), model.is_some(), "admission");
                    if let (Ok(p), Some(t)) = (real, model) {
                        prop_assert_eq!(p.is_probe(), t.1);
                        p.record(outcome(ok));
                        m.finish(t, Some(ok));
                    }
                }
                Op::Start => {
                    let real = b.try_acquire_owned();
                    let model = m.acquire();
                    prop_assert_eq!(real.is_ok(), model.is_some(), "admission");
                    if let (Ok(p), Some(t)) = (real, model) {
                        held.push_back((p, t));
                    }
                }
                Op::Finish(i, ok) => {
                    if i < held.len() {
                        let (p, t) = held.remove(i).unwrap();
                        p.record(outcome(ok));
                        m.finish(t, Some(ok));
                    }
                }
                Op::Cancel(i) => {
                    if i < held.len() {
                        let (p, t) = held.remove(i).unwrap();
                        drop(p);
                        m.finish(t, None);
                    }
                }
                Op::Advance(ms) => {
                    hand.advance(Duration::from_millis(ms));
                    m.now += ms;
                }
                Op::ForceOpen => {
                    b.force_open();
                    m.enter(State::ForcedOpen);
                }
                Op::ForceClosed => {
                    b.force_closed();
                    m.enter(State::ForcedClosed);
                }
                Op::Reset => {
                    b.reset();
                    m.enter(State::Closed);
                }
            }
            let s = b.stats();
            prop_assert_eq!(s.state, m.observe());
            if m.state == State::HalfOpen {
                prop_assert_eq!(s.half_open_in_flight, m.in_flight);
                prop_assert_eq!(s.half_open_successes, m.successes);
            }
            if m.state == State::Closed {
                prop_assert_eq!(s.consecutive_failures, m.failures);
            }
        }
        // Dropping everything still held leaves no probe slot taken.
        held.clear();
        prop_assert_eq!(b.stats().half_open_in_flight, 0);
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn breaker_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..120)) {
        run(ops)?;
    }

    #[test]
    fn count_window_agrees_with_a_deque(
        outcomes in proptest::collection::vec(any::<bool>(), 1..200),
        window in 1u32..20,
        rate_pct in 1u32..=100,
        min_calls_pct in 1u32..=100,
    ) {
        let rate = f64::from(rate_pct) / 100.0;
        let min_calls = (window * min_calls_pct / 100).max(1);
        {
            let b = CircuitBreaker::builder()
                .clock(Clock::manual().0)
                .policy(TripPolicy::failure_rate_count(window, rate, min_calls))
                .build_breaker()
                .unwrap();
            let mut last: VecDeque<bool> = VecDeque::new();
            for ok in outcomes {
                if b.state() != State::Closed {
                    break;
                }
                b.try_acquire().unwrap().record(outcome(ok));
                last.push_back(ok);
                if last.len() > window as usize {
                    last.pop_front();
                }
                let failures = last.iter().filter(|ok| !**ok).count() as f64;
                let trips = last.len() as u32 >= min_calls && failures / last.len() as f64 >= rate;
                let want = if trips { State::Open } else { State::Closed };
                prop_assert_eq!(b.state(), want);
                if !trips {
                    prop_assert_eq!(b.stats().window_failures as f64, failures);
                }
            }
        }
    }
}
