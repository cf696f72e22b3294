//! Allocation counts of every seawall layer beside the benches' peers: see
//! `tests/allocations.rs` (`cargo test -p seawall-bench-allocations -- --nocapture`
//! prints the peers' counts).
