//! Offers that learn, in the worker: the responses of a checkpoint interval are counted in the
//! model store *before* the interval's customers are stored (the order that makes a replayed
//! response count once, see `state::models`), and the totals the store answers go into the
//! table every decision reads. Every `operator.learning.refresh`, one worker reloads every model
//! of the rule set, which takes in what the other instances learned (and the rankings behind the
//! AUC metric, which only a whole load reads). The interval's uplift
//! exposures and conversions are counted the same way, and the totals set the uplift metrics.

use super::checkpoint::with_retry;
use super::WorkerContext;
use crate::learning::model::{ModelTotals, Models, Observation};
use crate::learning::propensity::Posterior;
use crate::learning::uplift::{Groups, Tally};
use crate::operator::Operator;
use crate::state::models::ModelStore;
use crate::state::StateError;
use crate::telemetry::metrics;

/// Counts `observations` in the store (retried until it answers, like the state it precedes)
/// and takes the totals into the operator's table. `false` when the work was given up because
/// its partitions were reassigned meanwhile; `true` otherwise, also when learning is off.
pub(super) async fn record(
    ctx: &WorkerContext,
    operator: &Operator,
    observations: &[Observation],
    generation: u64,
) -> bool {
    let (Some(models), Some(store)) = (operator.models(), &ctx.models) else {
        return true;
    };
    if observations.is_empty() {
        return true;
    }
    let store = &store;
    let Some(totals) = with_retry(ctx, "learn", generation, || store.record(observations)).await
    else {
        return false;
    };
    take(operator, models, &totals);
    true
}

/// Counts the uplift `tallies` in the store, like [`record`] (also when learning is off), and
/// sets the uplift metrics of the rules touched from the totals.
pub(super) async fn record_uplift(ctx: &WorkerContext, tallies: &[Tally], generation: u64) -> bool {
    let Some(store) = &ctx.models else {
        return true;
    };
    if tallies.is_empty() {
        return true;
    }
    let Some(totals) = with_retry(ctx, "uplift", generation, || store.record_uplift(tallies)).await
    else {
        return false;
    };
    show_uplift(&totals);
    true
}

/// The uplift metrics of each rule: its groups, and the uplift and lift with their intervals.
fn show_uplift(totals: &[(String, Groups)]) {
    let m = metrics();
    for (rule, g) in totals {
        for (label, arm) in [("treated", g.treated), ("control", g.control)] {
            m.uplift_customers
                .with_label_values(&[rule, label])
                .set(arm.customers as i64);
            m.uplift_conversions
                .with_label_values(&[rule, label])
                .set(arm.converted as i64);
        }
        let Some(u) = g.uplift() else { continue };
        let estimates = [("uplift", Some(u.absolute)), ("lift", u.lift)];
        for (what, estimate) in estimates {
            let Some(e) = estimate else { continue };
            for (bound, v) in [("value", e.value), ("low", e.low), ("high", e.high)] {
                m.offer_uplift
                    .with_label_values(&[rule, what, bound])
                    .set(v);
            }
        }
        m.offer_uplift_significant
            .with_label_values(&[rule])
            .set(i64::from(u.significant()));
    }
}

/// Reloads every model of the operator's rule set when a reload is due and no other worker
/// took it. A failure is logged and counted, and the next checkpoint tries again: decisions go
/// on with what the table holds.
pub(super) async fn refresh_if_due(ctx: &WorkerContext, operator: &Operator) {
    let (Some(models), Some(store), Some(every)) =
        (operator.models(), &ctx.models, operator.learning_refresh())
    else {
        return;
    };
    if !models.claim_reload(every) {
        return;
    }
    if let Err(e) = load(&**store, operator).await {
        metrics().state_errors.with_label_values(&["learn"]).inc();
        tracing::warn!(error = %e, "learned models not reloaded; decisions use what they have");
    }
}

/// Loads every model of the operator's rule set from `store` into its table (at start, before
/// the first decision, so a restart decides with what was learned before it), and sets the
/// uplift metrics from the store's counts (also with learning off).
pub async fn load(store: &dyn ModelStore, operator: &Operator) -> Result<(), StateError> {
    let ids: Vec<String> = operator
        .rules()
        .offers
        .iter()
        .map(|r| r.head.id.clone())
        .collect();
    show_uplift(&store.load_uplift(&ids).await?);
    let Some(models) = operator.models() else {
        return Ok(());
    };
    let totals = store.load(&ids).await?;
    take(operator, models, &totals);
    Ok(())
}

/// Sets the table and the model metrics from the store's totals.
fn take(operator: &Operator, models: &Models, totals: &[ModelTotals]) {
    models.set(totals);
    let m = metrics();
    for t in totals {
        let labels = [t.rule_id.as_str(), t.segment.as_str()];
        m.offer_model_responses
            .with_label_values(&labels)
            .set(t.counts.trials as i64);
        m.offer_model_positives
            .with_label_values(&labels)
            .set(t.counts.positives as i64);
        if let Some(mut prior) = operator.model_prior(&t.rule_id) {
            // The model's mean over its offers: their mean configured propensity as the prior.
            if t.counts.trials > 0 {
                prior.propensity = t.counts.expected / t.counts.trials as f64;
            }
            let posterior = Posterior::with_counts(prior, t.counts);
            m.offer_model_propensity
                .with_label_values(&labels)
                .set(posterior.mean());
            m.offer_model_evidence
                .with_label_values(&labels)
                .set(posterior.evidence());
        }
        if let Some(auc) = t.ranking.as_ref().and_then(|r| r.auc()) {
            m.offer_model_auc.with_label_values(&labels).set(auc);
        }
    }
}
