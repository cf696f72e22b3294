//! Rate budgets for plain loops (`LoopBudget`) and tower services
//! (`BudgetLayer`), and bounded queues with an explicit overflow policy.
//!
//! Not built yet: this crate is a placeholder in the workspace.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
