//! The typed metrics registry: one struct, one place to read every metric's name and labels.
//! Names follow `nbo_<name>_<unit>`; labels are bounded sets (topic, rule, outcome, error kind,
//! partition), never a customer id. The hot path counts in locals and publishes once per batch.

use prometheus::{
    exponential_buckets, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter,
    IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};
use std::sync::OnceLock;

/// Every metric nbo-stream exports.
pub struct Metrics {
    /// The registry `/metrics` renders.
    pub registry: Registry,
    /// Records consumed, by topic.
    pub events_consumed: IntCounterVec,
    /// Records that failed to decode, by topic and error kind.
    pub decode_errors: IntCounterVec,
    /// Records sent to the dead-letter topic, by source topic and error kind.
    pub dead_letters: IntCounterVec,
    /// Events older than the longest window, dropped and counted, by topic.
    pub late_events: IntCounterVec,
    /// Events skipped because their offset was already applied (replays).
    pub replayed_events: IntCounter,
    /// Records released out of event-time alignment, by input topic and why: `waited` (another
    /// topic's partition behind its end was waited out for `kafka.max_idle`) or `full` (the
    /// partition group's buffer was full). See `source::align`.
    pub unaligned_records: IntCounterVec,
    /// Input records held by the event-time alignment, waiting for their turn.
    pub aligned_buffered: IntGauge,
    /// Feature tile updates.
    pub feature_updates: IntCounter,
    /// Offers produced, by rule.
    pub offers: IntCounterVec,
    /// Alerts produced, by rule, its version and severity.
    pub alerts: IntCounterVec,
    /// Decisions by outcome (suppressions by reason).
    pub decisions: IntCounterVec,
    /// Audit records produced: one per decision, or one per roll-up of cooldown repeats
    /// (`operator.audit_rollup`), which `decisions` counts as the decisions it stands for.
    pub audit_records: IntCounter,
    /// Decisions by rule, rule version, role (`champion`: the version in force; `challenger`: a
    /// shadow version on trial beside it) and outcome; a challenger's outcome is what it would have
    /// decided (its audit's `shadow_outcome`), so the two versions' counts compare.
    pub rule_decisions: IntCounterVec,
    /// Event time → decision produced, seconds: how far behind the events' own clock the
    /// decisions are. It includes how late producers send, so for back-dated, replayed or
    /// generated data it says nothing about the pipeline; see `processing_latency` for that.
    pub event_time_lag: Histogram,
    /// Record received from Kafka → its batch's outputs acknowledged (at-least-once) or its
    /// transaction committed (exactly-once), seconds. Measured from the first record of each
    /// batch, so an upper bound for every record of it (by at most `kafka.batch_linger`).
    pub processing_latency: Histogram,
    /// Events per operator batch.
    pub batch_size: Histogram,
    /// Duration of one state flush (one round trip), seconds.
    pub state_flush_duration: Histogram,
    /// Duration of one checkpoint (state flush, then offsets stored or the transaction
    /// committed), seconds.
    pub checkpoint_duration: Histogram,
    /// Customers written per checkpoint.
    pub checkpoint_customers: Histogram,
    /// State store errors, by operation.
    pub state_errors: IntCounterVec,
    /// State store round trips.
    pub state_round_trips: IntCounter,
    /// Consumer lag, by topic and partition.
    pub consumer_lag: IntGaugeVec,
    /// 1 for each input topic partition assigned to this instance (reset on every revoke): which
    /// instance owns which customers.
    pub assigned_partitions: IntGaugeVec,
    /// Rebalance callbacks, by kind (assign, revoke).
    pub rebalances: IntCounterVec,
    /// Customers in the in-process cache.
    pub cached_customers: IntGauge,
    /// Input partitions paused because the worker that owns them has a full queue (its state
    /// store or producer is slow or down); 0 in normal running.
    pub paused_partitions: IntGauge,
    /// Times a worker's partitions were paused for backpressure.
    pub pauses: IntCounter,
    /// Rules in force, by kind (offer, alert).
    pub active_rules: IntGaugeVec,
    /// Version of the rule set in force.
    pub ruleset_version: IntGauge,
    /// Rule documents read from the rules topic, by result (installed, deleted, unchanged,
    /// rejected).
    pub rule_changes: IntCounterVec,
    /// Produce failures, by topic.
    pub produce_errors: IntCounterVec,
    /// Transactions aborted by a rebalance (exactly-once); their batches are replayed by the
    /// partitions' next owner.
    pub transactions_aborted: IntCounter,
    /// Delivery attempts that failed transiently and are retried after a backoff, by delivery
    /// mode (`at_least_once`, `exactly_once`) and failed step (`publish`, `begin`,
    /// `send_offsets`, `commit`, `abort`); see `sink` for which failures are retried.
    pub delivery_retries: IntCounterVec,
    /// Writer schemas met on input topics, by topic and resolution (`identity`, `resolved`,
    /// `unknown`, `incompatible`): each id is counted once, when first seen. An `unknown` or
    /// `incompatible` writer's records are all dead-lettered (alert `NboWriterSchemaRefused`).
    pub schema_writers: IntCounterVec,
    /// Schema Registry requests that failed transiently and were retried (the batch waits).
    pub schema_registry_errors: IntCounter,
    /// 1 when the pipeline is consuming and its dependencies answer.
    pub ready: Gauge,
    /// Events written by the generator, by topic.
    pub generated_events: IntCounterVec,
    /// Offers that got a response, learned from, by offer rule and segment.
    pub offer_model_responses: IntGaugeVec,
    /// Of them, accepted.
    pub offer_model_positives: IntGaugeVec,
    /// The learned propensity over the offers learned from (their mean configured propensity,
    /// recalibrated), by offer rule and segment.
    pub offer_model_propensity: GaugeVec,
    /// The evidence behind it: the prior's weight plus the responses.
    pub offer_model_evidence: GaugeVec,
    /// How well the model's scores rank the offers learned from (AUC: accepted above the
    /// rest), by offer rule and segment, for rules whose propensity scores features.
    pub offer_model_auc: GaugeVec,
    /// Offers made by a decision that explored (ranked by a draw, not the mean), by rule.
    pub offers_explored: IntCounterVec,
    /// Customers exposed to an offer rule (once per uplift window), by rule and group
    /// (`treated`, `control`): the store's totals, every instance's.
    pub uplift_customers: IntGaugeVec,
    /// Of them, converted within the window (a product of the offer's family opened).
    pub uplift_conversions: IntGaugeVec,
    /// What an offer rule caused, by rule, `measure` (`uplift`: `p_t − p_c`; `lift`:
    /// `p_t / p_c − 1`) and `bound` (`value`, `low`, `high`: the 95% interval).
    pub offer_uplift: GaugeVec,
    /// 1 when the offer rule's uplift (and lift) interval leaves out zero, by rule.
    pub offer_uplift_significant: IntGaugeVec,
    /// Inbound decisions (`nbo-stream api`): request received to answer sent, by channel.
    pub api_decision_seconds: HistogramVec,
    /// Inbound decisions: the time of each stage that waits on another system, by `stage`
    /// (`state`: the customer's state read from Redis; `audit`: the audit records written to the
    /// outbox in Redis).
    pub api_stage_seconds: HistogramVec,
    /// Inbound decisions answered, by channel and outcome (`OFFERED`, or the suppression).
    pub api_decisions: IntCounterVec,
    /// Inbound requests refused, by error code (`no_key`, `over_rate`, `bad_json`, ...).
    pub api_refused: IntCounterVec,
    /// Audit records in the API's outbox, not yet on the audit topic (`api::outbox`).
    pub api_outbox_pending: IntGauge,
    /// Audit records moved from the outbox to the audit topic.
    pub api_outbox_moved: IntCounter,
    /// Rounds of the outbox's drainer that failed (Redis or the broker), retried.
    pub api_outbox_errors: IntCounter,
    /// Alerts' cases closed (`bank.alert-outcomes.v1`), by rule, rule version and label
    /// (`CONFIRMED_RISK`, `VALUABLE_ALERT`, `FALSE_POSITIVE`, `DUPLICATE`): precision per rule is
    /// `CONFIRMED_RISK` over the labels but `DUPLICATE`.
    pub alert_outcomes: IntCounterVec,
    /// The amounts at stake in the closed cases, in minor units, by rule, version, label and
    /// currency (for `CONFIRMED_RISK`: the amount prevented).
    pub alert_outcome_amount: IntCounterVec,
    /// From an alert to its case's closure, by rule and version.
    pub alert_time_to_close: HistogramVec,
    /// Closed alerts of a champion, counted for each challenger of its rule at the time: by the
    /// challenger's version, the label, and whether it would have raised the alert too
    /// (`fired` yes or no).
    pub challenger_alert_outcomes: IntCounterVec,
    /// Alert outcomes that changed nothing, by reason (`already_labelled`: the alert's case was
    /// closed before; a resent closure or a relabelling).
    pub alert_outcomes_ignored: IntCounterVec,
}

fn float_gauges(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    let g = GaugeVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    registry
        .register(Box::new(g.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    g
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    registry
        .register(Box::new(c.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    c
}

fn histogram(registry: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    registry
        .register(Box::new(h.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    h
}

impl Metrics {
    // Metric definitions are constants of this program: a failure here is a defect found by the
    // first test that touches metrics, never something input can cause.
    fn build() -> Self {
        let registry = Registry::new();
        let r = &registry;
        let single = |name: &str, help: &str| -> IntCounter {
            let c = IntCounter::new(name, help).unwrap_or_else(|e| panic!("metric {name}: {e}"));
            r.register(Box::new(c.clone()))
                .unwrap_or_else(|e| panic!("metric {name}: {e}"));
            c
        };
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| -> IntGaugeVec {
            let g = IntGaugeVec::new(Opts::new(name, help), labels)
                .unwrap_or_else(|e| panic!("metric {name}: {e}"));
            r.register(Box::new(g.clone()))
                .unwrap_or_else(|e| panic!("metric {name}: {e}"));
            g
        };
        let int_gauge = |name: &str, help: &str| -> IntGauge {
            let g = IntGauge::new(name, help).unwrap_or_else(|e| panic!("metric {name}: {e}"));
            r.register(Box::new(g.clone()))
                .unwrap_or_else(|e| panic!("metric {name}: {e}"));
            g
        };
        let ready = Gauge::new("nbo_ready", "1 when consuming and dependencies answer")
            .unwrap_or_else(|e| panic!("{e}"));
        r.register(Box::new(ready.clone()))
            .unwrap_or_else(|e| panic!("{e}"));
        let latency_buckets = exponential_buckets(0.001, 2.0, 18).unwrap_or_default();
        Self {
            events_consumed: counter(
                r,
                "nbo_events_consumed_total",
                "Records consumed",
                &["topic"],
            ),
            decode_errors: counter(
                r,
                "nbo_decode_errors_total",
                "Records that failed to decode",
                &["topic", "error_kind"],
            ),
            dead_letters: counter(
                r,
                "nbo_dead_letters_total",
                "Records sent to the dead-letter topic",
                &["topic", "error_kind"],
            ),
            late_events: counter(
                r,
                "nbo_late_events_total",
                "Events older than the longest window, dropped",
                &["topic"],
            ),
            replayed_events: single(
                "nbo_replayed_events_total",
                "Events skipped because already applied",
            ),
            unaligned_records: counter(
                r,
                "nbo_unaligned_records_total",
                "Input records released out of event-time order across topics (waited: a partition behind its end was waited out; full: the group's buffer was full)",
                &["topic", "why"],
            ),
            aligned_buffered: {
                let g = IntGauge::new(
                    "nbo_aligned_buffered_records",
                    "Input records held by the event-time alignment",
                )
                .unwrap_or_else(|e| panic!("{e}"));
                r.register(Box::new(g.clone()))
                    .unwrap_or_else(|e| panic!("{e}"));
                g
            },
            feature_updates: single("nbo_feature_updates_total", "Feature tile updates"),
            offers: counter(r, "nbo_offers_total", "Offers produced", &["rule"]),
            alerts: counter(
                r,
                "nbo_alerts_total",
                "Alerts produced, by rule, its version and severity",
                &["rule", "version", "severity"],
            ),
            decisions: counter(
                r,
                "nbo_decisions_total",
                "Decisions by outcome",
                &["outcome"],
            ),
            audit_records: single(
                "nbo_audit_records_total",
                "Audit records produced (a roll-up of cooldown repeats is one record; nbo_decisions_total counts its decisions)",
            ),
            rule_decisions: counter(
                r,
                "nbo_rule_decisions_total",
                "Decisions by rule, version, role (champion or challenger) and outcome (a challenger's: what it would have decided)",
                &["rule", "version", "role", "outcome"],
            ),
            event_time_lag: histogram(
                r,
                "nbo_event_time_lag_seconds",
                "Event time to decision produced (includes producer delay; not pipeline latency)",
                latency_buckets.clone(),
            ),
            // Twice as fine as the other latencies (1 ms to 131 s in steps of √2): with a 1 s
            // checkpoint interval exactly-once latencies sit between 0.1 and 2 s, where buckets
            // doubling from 1.024 to 2.048 s would put any p99 above 1 s near 2 s.
            processing_latency: histogram(
                r,
                "nbo_processing_latency_seconds",
                "Record received to its outputs acknowledged (at-least-once) or committed (exactly-once)",
                exponential_buckets(0.001, std::f64::consts::SQRT_2, 35).unwrap_or_default(),
            ),
            batch_size: histogram(
                r,
                "nbo_batch_size_events",
                "Events per operator batch",
                exponential_buckets(1.0, 2.0, 16).unwrap_or_default(),
            ),
            state_flush_duration: histogram(
                r,
                "nbo_state_flush_duration_seconds",
                "One state flush round trip",
                exponential_buckets(0.0001, 2.0, 18).unwrap_or_default(),
            ),
            checkpoint_duration: histogram(
                r,
                "nbo_checkpoint_duration_seconds",
                "One checkpoint: state flush, then offsets stored or transaction committed",
                exponential_buckets(0.0005, 2.0, 16).unwrap_or_default(),
            ),
            checkpoint_customers: histogram(
                r,
                "nbo_checkpoint_customers",
                "Customers written per checkpoint",
                exponential_buckets(1.0, 4.0, 12).unwrap_or_default(),
            ),
            state_errors: counter(r, "nbo_state_errors_total", "State store errors", &["op"]),
            state_round_trips: single("nbo_state_round_trips_total", "State store round trips"),
            consumer_lag: gauge_vec(
                "nbo_consumer_lag_messages",
                "Consumer lag",
                &["topic", "partition"],
            ),
            assigned_partitions: gauge_vec(
                "nbo_assigned_partitions",
                "1 for each input topic partition assigned to this instance",
                &["topic", "partition"],
            ),
            rebalances: counter(r, "nbo_rebalances_total", "Rebalance callbacks", &["kind"]),
            cached_customers: int_gauge(
                "nbo_cached_customers",
                "Customers in the in-process cache",
            ),
            paused_partitions: int_gauge(
                "nbo_paused_partitions",
                "Input partitions paused because their worker's queue is full",
            ),
            pauses: single(
                "nbo_consumption_pauses_total",
                "Times a worker's partitions were paused for backpressure",
            ),
            active_rules: gauge_vec("nbo_active_rules", "Rules in force", &["kind"]),
            ruleset_version: int_gauge("nbo_ruleset_version", "Version of the rule set in force"),
            rule_changes: counter(
                r,
                "nbo_rule_changes_total",
                "Rule documents read from the rules topic, by result",
                &["result"],
            ),
            transactions_aborted: single(
                "nbo_transactions_aborted_total",
                "Transactions aborted by a rebalance (their batches are replayed)",
            ),
            schema_writers: counter(
                r,
                "nbo_schema_writers_total",
                "Writer schemas met on input topics, by how they resolve to the reader schema",
                &["topic", "resolution"],
            ),
            schema_registry_errors: single(
                "nbo_schema_registry_errors_total",
                "Schema Registry requests failed transiently and retried",
            ),
            delivery_retries: counter(
                r,
                "nbo_delivery_retries_total",
                "Delivery attempts failed transiently and retried after a backoff",
                &["mode", "step"],
            ),
            produce_errors: counter(
                r,
                "nbo_produce_errors_total",
                "Produce failures",
                &["topic"],
            ),
            ready,
            generated_events: counter(
                r,
                "nbo_generated_events_total",
                "Events written by the generator",
                &["topic"],
            ),
            offer_model_responses: gauge_vec(
                "nbo_offer_model_responses",
                "Offers that got a response, learned from, by offer rule and segment",
                &["rule", "segment"],
            ),
            offer_model_positives: gauge_vec(
                "nbo_offer_model_positives",
                "Offers accepted, learned from, by offer rule and segment",
                &["rule", "segment"],
            ),
            offer_model_propensity: float_gauges(
                r,
                "nbo_offer_model_propensity",
                "Learned propensity over the offers learned from (their configured propensities, recalibrated by the responses), by offer rule and segment",
                &["rule", "segment"],
            ),
            offer_model_evidence: float_gauges(
                r,
                "nbo_offer_model_evidence",
                "Evidence behind the learned propensity: the prior's weight in responses plus the responses",
                &["rule", "segment"],
            ),
            offer_model_auc: float_gauges(
                r,
                "nbo_offer_model_auc",
                "AUC of the model's propensity over the offers learned from (accepted ranked above the rest; 0.5 ranks at random), by offer rule and segment, for rules whose propensity scores features",
                &["rule", "segment"],
            ),
            offers_explored: counter(
                r,
                "nbo_offers_explored_total",
                "Offers made by a decision that explored (ranked by a draw from the learned posterior)",
                &["rule"],
            ),
            uplift_customers: gauge_vec(
                "nbo_uplift_customers",
                "Customers exposed to an offer rule once per uplift window, by rule and group (treated, control)",
                &["rule", "group"],
            ),
            uplift_conversions: gauge_vec(
                "nbo_uplift_conversions",
                "Exposed customers who opened a product of the offer's family within the uplift window, by rule and group",
                &["rule", "group"],
            ),
            offer_uplift: float_gauges(
                r,
                "nbo_offer_uplift",
                "What an offer rule caused against its control group: measure uplift (p_t - p_c) or lift (p_t/p_c - 1), bound value/low/high (95% interval)",
                &["rule", "measure", "bound"],
            ),
            offer_uplift_significant: gauge_vec(
                "nbo_offer_uplift_significant",
                "1 when the offer rule's uplift interval (and its lift's) leaves out zero",
                &["rule"],
            ),
            api_decision_seconds: {
                let name = "nbo_api_decision_seconds";
                let opts = HistogramOpts::new(
                    name,
                    "Inbound decision, request received to answer sent, by channel",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0,
                ]);
                let h = HistogramVec::new(opts, &["channel"])
                    .unwrap_or_else(|e| panic!("metric {name}: {e}"));
                r.register(Box::new(h.clone()))
                    .unwrap_or_else(|e| panic!("metric {name}: {e}"));
                h
            },
            api_stage_seconds: {
                let name = "nbo_api_stage_seconds";
                let opts = HistogramOpts::new(
                    name,
                    "Inbound decision stages that wait on another system (state: the customer's state read from Redis; audit: the audit records written to the outbox in Redis)",
                )
                .buckets(vec![
                    0.0002, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 1.0,
                ]);
                let h = HistogramVec::new(opts, &["stage"])
                    .unwrap_or_else(|e| panic!("metric {name}: {e}"));
                r.register(Box::new(h.clone()))
                    .unwrap_or_else(|e| panic!("metric {name}: {e}"));
                h
            },
            api_decisions: counter(
                r,
                "nbo_api_decisions_total",
                "Inbound decisions answered, by channel and outcome (OFFERED or the suppression)",
                &["channel", "outcome"],
            ),
            api_refused: counter(
                r,
                "nbo_api_refused_total",
                "Inbound requests refused, by error code",
                &["code"],
            ),
            api_outbox_pending: {
                let g = IntGauge::new(
                    "nbo_api_outbox_pending",
                    "Records (audit records and contacts) in the API's outbox (Redis), not yet on their topics",
                )
                .unwrap_or_else(|e| panic!("{e}"));
                r.register(Box::new(g.clone()))
                    .unwrap_or_else(|e| panic!("{e}"));
                g
            },
            api_outbox_moved: single(
                "nbo_api_outbox_moved_total",
                "Records moved from the API's outbox to their topics (audit, inbound contacts)",
            ),
            api_outbox_errors: single(
                "nbo_api_outbox_errors_total",
                "Rounds of the API's outbox drainer that failed (Redis or the broker), retried",
            ),
            alert_outcomes: counter(
                r,
                "nbo_alert_outcomes_total",
                "Alerts' cases closed, by rule, rule version and label (precision: CONFIRMED_RISK over the labels but DUPLICATE)",
                &["rule", "version", "label"],
            ),
            alert_outcomes_ignored: counter(
                r,
                "nbo_alert_outcomes_ignored_total",
                "Alert outcomes that changed nothing, by reason (already_labelled: a resent closure or a relabelling)",
                &["reason"],
            ),
            challenger_alert_outcomes: counter(
                r,
                "nbo_challenger_alert_outcomes_total",
                "Champions' closed alerts per challenger of the rule: by its version, the label and whether it would have raised the alert too",
                &["rule", "version", "label", "fired"],
            ),
            alert_outcome_amount: counter(
                r,
                "nbo_alert_outcome_amount_minor_total",
                "Amounts at stake in alerts' closed cases, minor units, by rule, version, label and currency (CONFIRMED_RISK: prevented)",
                &["rule", "version", "label", "currency"],
            ),
            alert_time_to_close: {
                let name = "nbo_alert_time_to_close_seconds";
                let hour = 3600.0;
                let opts = HistogramOpts::new(name, "From an alert to its case's closure, by rule and version")
                    .buckets(vec![
                        hour,
                        4.0 * hour,
                        12.0 * hour,
                        24.0 * hour,
                        3.0 * 24.0 * hour,
                        7.0 * 24.0 * hour,
                        14.0 * 24.0 * hour,
                        30.0 * 24.0 * hour,
                        90.0 * 24.0 * hour,
                    ]);
                let h = HistogramVec::new(opts, &["rule", "version"])
                    .unwrap_or_else(|e| panic!("metric {name}: {e}"));
                r.register(Box::new(h.clone()))
                    .unwrap_or_else(|e| panic!("metric {name}: {e}"));
                h
            },
            registry,
        }
    }
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::build)
}

/// Renders every metric in the Prometheus text format.
pub fn render() -> String {
    use prometheus::Encoder;
    let mut buf = Vec::new();
    let encoder = prometheus::TextEncoder::new();
    // Encoding into a Vec only fails on invalid metric families, which build() rules out.
    let _ = encoder.encode(&metrics().registry.gather(), &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}
