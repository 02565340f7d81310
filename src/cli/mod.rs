//! The `nbo-stream` command line, by role: its arguments, the long-running verbs, the data verbs
//! and the administration verbs.

pub(crate) mod admin;
pub(crate) mod args;
pub(crate) mod data;
pub(crate) mod serve;
