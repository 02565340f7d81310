//! The `nbo-stream` command line, by role: its arguments, the long-running verbs, the data verbs
//! (and the simulator that answers offers), the administration verbs and the rule lifecycle verbs.

pub(crate) mod admin;
pub(crate) mod args;
pub(crate) mod data;
pub(crate) mod rules;
pub(crate) mod serve;
pub(crate) mod simulate;
