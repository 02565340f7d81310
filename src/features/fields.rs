//! The fields of the input records, where features and rules have always named them: the types
//! are the catalog's ([`crate::catalog::field`]); [`of`] and [`find`] answer for the built-in
//! records, and a declared source's fields are its row in the configuration's
//! [`crate::catalog::Catalog`].

pub use crate::catalog::builtin::{fields as of, find};
pub use crate::catalog::field::*;
