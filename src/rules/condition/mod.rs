//! Rule conditions: CEL (Common Expression Language) over three roots, compiled once into a typed
//! tree that is evaluated per event without string lookups, hashing or allocation.
//!
//! - `event.<field>`: the triggering event's fields, by Avro field name, resolved per trigger kind
//!   (`compile.rs` builds one tree per kind; `roots.rs` says how each field is read);
//! - `features.<name>`: the customer's feature values (doubles), resolved to slots;
//! - `profile.<field>`: `lifecycle_stage`, `segment`, `credit_score`, `consent_marketing`,
//!   `consent_profiling`, `contact_channels`.
//!
//! The `cel` crate parses (its AST is the input of `compile.rs`); its interpreter is the
//! reference the evaluation (`eval.rs`) matches, checked by `tests/condition_reference.rs`:
//!
//! - **Absent values.** A feature without a value, a null event field, a missing credit score and
//!   every profile field when no profile is known are *absent*: reading one is an error, `has()`
//!   of it is false (the reference sees maps without those keys; with no profile, an empty map).
//! - **Errors.** Any error makes the condition false, but inside it errors follow CEL:
//!   `false && error` and `error && false` are false, `true || error` and `error || true` are true,
//!   everything else with an error is an error (`!error`, `error == 1`, `error ? a : b`).
//! - **Numbers.** `int` (Avro int/long fields, int literals, `size()`), `uint` (literals) and
//!   `double` (features, Avro double fields, double literals) stay distinct. Comparisons mix them
//!   as the reference does (an int against a double compares as doubles; NaN compares with
//!   nothing: an error for `<`, false for `==`). Arithmetic needs one type on both sides (a
//!   compile error otherwise, a runtime error in CEL); int and uint arithmetic is checked
//!   (overflow and division by zero are errors), double arithmetic is IEEE (x / 0.0 is infinite).
//! - **Enums** (event enum fields, `profile.lifecycle_stage`, `profile.contact_channels`) are their
//!   Avro symbols as strings; a string literal compared with one must be one of its symbols.
//!
//! Deliberate differences from the reference, all at compile time: anything outside the supported
//! subset is rejected, and so are expressions whose types cannot work (`'a' >= 1`, `1 + 1.0`, a
//! non-boolean condition) or whose result the types already decide (`event.country == 1`, false in
//! CEL). Evaluation itself has no known difference.

mod compile;
mod display;
mod eval;
mod messages;
mod roots;

use crate::customer::ProfileState;
use crate::event::{Event, EventKind, KindTable};
use crate::features::FeatureSet;
use std::sync::Arc;

/// A condition that does not compile: where (1-based line and column of the offending part of the
/// source) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ConditionError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong, in words.
    pub message: String,
}

/// A compiled rule condition: cheap to evaluate, shareable between threads.
#[derive(Debug, Clone)]
pub struct Condition {
    /// One tree per event kind (by [`EventKind::index`]); `None` for kinds that do not trigger.
    programs: KindTable<Option<eval::Node>>,
    feature_slots: Vec<usize>,
    terms: Vec<Arc<str>>,
}

impl Condition {
    /// Compiles `source` for rules triggered by `triggers`, over the features of `features`: the
    /// first error of [`Condition::compile_all`].
    ///
    /// Every `event.<field>` must exist, with a type that fits its use, in every trigger kind.
    pub fn compile(
        source: &str,
        triggers: &[EventKind],
        features: &FeatureSet,
    ) -> Result<Condition, ConditionError> {
        Self::compile_all(source, triggers, features).map_err(first)
    }

    /// As [`Condition::compile`], with every error found in one pass: each operand of `&&`, `||`,
    /// comparisons and arithmetic is compiled even when another failed, and so is the condition
    /// for each trigger kind. Errors come kind by kind, in the order of the source within a
    /// kind; a place that is wrong for several kinds is reported once (never empty).
    pub fn compile_all(
        source: &str,
        triggers: &[EventKind],
        features: &FeatureSet,
    ) -> Result<Condition, Vec<ConditionError>> {
        let program = cel::Program::compile(source).map_err(|e| {
            let mut errors: Vec<ConditionError> = e
                .errors
                .iter()
                .map(|e| ConditionError {
                    line: usize::try_from(e.pos.0).unwrap_or(1).max(1),
                    column: usize::try_from(e.pos.1).unwrap_or(1).max(1),
                    message: e.msg.clone(),
                })
                .collect();
            if errors.is_empty() {
                errors.push(ConditionError {
                    line: 1,
                    column: 1,
                    message: "syntax error".into(),
                });
            }
            errors
        })?;
        if triggers.is_empty() {
            return Err(vec![ConditionError {
                line: 1,
                column: 1,
                message: "a condition needs at least one trigger event kind".into(),
            }]);
        }
        let mut programs = KindTable::<Option<eval::Node>>::default();
        let mut slots = Vec::new();
        let mut errors: Vec<ConditionError> = Vec::new();
        for &kind in triggers {
            if programs.entry(kind).is_some() {
                continue;
            }
            let mut compiler = compile::Compiler {
                kind,
                features,
                info: program.source_info(),
                slots: Vec::new(),
                errors: Vec::new(),
            };
            let node = compiler.condition(program.expression());
            let mut found = compiler.errors;
            match node {
                Ok(node) if found.is_empty() => {
                    slots.extend(compiler.slots);
                    *programs.entry(kind) = Some(node);
                    continue;
                }
                Ok(_) => {}
                Err(e) => found.push(e),
            }
            found.sort_by_key(|e| (e.line, e.column));
            for mut e in found {
                if errors
                    .iter()
                    .any(|o| (o.line, o.column) == (e.line, e.column))
                {
                    continue;
                }
                if triggers.len() > 1 {
                    let record = features.catalog().record_name(kind);
                    e.message = format!("{} (for {record} events)", e.message);
                }
                errors.push(e);
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        slots.sort_unstable();
        slots.dedup();
        let terms = display::and_terms(program.expression())
            .into_iter()
            .map(|t| Arc::from(display::render(t)))
            .collect();
        Ok(Condition {
            programs,
            feature_slots: slots,
            terms,
        })
    }

    /// Evaluates for `event` (its kind is one of the triggers). `feature(slot)` returns a
    /// feature's current value or `None` (no value); `profile` may be `None` (no profile known
    /// yet). The result is true only if the condition evaluates to boolean true; any evaluation
    /// error (missing feature value, missing profile, null field, overflow, division by zero...)
    /// makes it false, and so does an event of a kind that is not a trigger.
    pub fn eval(
        &self,
        event: &Event,
        profile: Option<&ProfileState>,
        feature: &mut dyn FnMut(usize) -> Option<f64>,
    ) -> bool {
        self.eval_with_text(event, profile, feature, &mut |_| None)
    }

    /// [`Condition::eval`], with `text(slot)` giving a text feature's value (`last` of a string
    /// or enum field) or `None`.
    pub fn eval_with_text<'a>(
        &'a self,
        event: &'a Event,
        profile: Option<&'a ProfileState>,
        feature: &mut dyn FnMut(usize) -> Option<f64>,
        text: &mut dyn FnMut(usize) -> Option<&'a str>,
    ) -> bool {
        let Some(Some(node)) = self.programs.get(event.kind()) else {
            return false;
        };
        let mut env = eval::Env {
            event,
            profile,
            feature,
            text,
        };
        node.eval_bool(&mut env) == Ok(true)
    }

    /// Feature slots the condition reads (sorted, distinct), for the audit record.
    pub fn feature_slots(&self) -> &[usize] {
        &self.feature_slots
    }

    /// The top-level `&&` terms, each rendered back as readable CEL text (e.g.
    /// `features.debit_card_spend_30d >= 1500.0`), for the "reasons" of a decision.
    pub fn terms(&self) -> &[Arc<str>] {
        &self.terms
    }
}

/// The first of `errors` (which [`Condition::compile_all`] never leaves empty).
fn first(errors: Vec<ConditionError>) -> ConditionError {
    errors.into_iter().next().unwrap_or(ConditionError {
        line: 1,
        column: 1,
        message: "the condition does not compile".into(),
    })
}

#[cfg(test)]
mod tests;
