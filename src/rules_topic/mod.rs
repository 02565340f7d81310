//! The rules and rules-history topics: the Kafka I/O of the rule lifecycle, kept out of `rules/`
//! (documents, compiler, book and history format, all pure).
//!
//! - [`watch`]: each instance reads the compacted rules topic, applies changes to its rule book
//!   and swaps the operator, auditing every change;
//! - [`publish`]: the CLI and the console write the history entry first, then the rule change.

pub mod publish;
pub mod watch;
