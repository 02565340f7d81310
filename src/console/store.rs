//! What the console remembers, and the bound on each part of it.
//!
//! - the latest offers and alerts for the live view: at most `console.keep_decisions` rows,
//!   oldest dropped first;
//! - decisions per minute by outcome for the chart: `console.chart_hours` × 60 minute buckets,
//!   in all and by rule, and offers per minute by rule and channel ([`super::facets`]);
//! - per rule version, decisions per minute by outcome for the last day (1,440 buckets of
//!   [`OUTCOMES`] counters; a challenger's by what it would have decided), for at most
//!   [`MAX_RULES`] rule versions (those beyond it are counted under [`OTHER_RULES`]);
//! - dead letters: a count per reason (at most [`MAX_REASONS`] reasons) and the latest
//!   `console.keep_dead_letters` of each;
//! - the latest `console.keep_decisions` audit records, for a customer's last decisions;
//! - the ruleset versions seen in the audit in the last [`VERSION_SEEN_MS`];
//! - the latest `console.keep_offer_ids` offer ids with their rule, so that an `OfferResponse`
//!   counts towards its rule (oldest forgotten first), and per rule the responses per minute for
//!   the last day;
//! - per shadow rule, its latest [`KEEP_SHADOW`] SHADOW audit records (what it would have done).
//!
//! Every part is a fixed-size ring or a capped map, so the console's memory does not grow with
//! the traffic it watches or the time it runs.

pub use super::event_lag::LagMinutes;
use super::facets::{Facets, RuleFacts, Series};
use super::minutes::DAY_MINUTES;
pub use super::minutes::{Minutes, MAX_RULES, OTHER_RULES, OUTCOMES, RESPONSES};
pub use super::rows::{Filter, Row};
use crate::event::{DecisionOutcome, OfferResponseKind};
use crate::output::{DeadLetter, DecisionAudit};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

/// Responses kept waiting for their offer (on a replay at start, a response can be read before
/// the offer it answers: Kafka orders nothing across topics); past it, the oldest is counted as
/// unattributed.
pub const MAX_PENDING: usize = 10_000;
/// SHADOW audit records kept per rule.
pub const KEEP_SHADOW: usize = 3;
/// Most distinct dead-letter reasons kept.
pub const MAX_REASONS: usize = 100;
/// A ruleset version is listed on the health page while the audit showed it this recently.
pub const VERSION_SEEN_MS: i64 = 10 * 60 * 1000;

/// Dead letters of one reason.
#[derive(Debug, Clone, Default)]
pub struct Reason {
    /// How many arrived since the console started reading.
    pub count: u64,
    /// The latest few, newest last.
    pub latest: VecDeque<DeadLetter>,
}

/// Everything the console keeps; see the module documentation for the bounds.
#[derive(Debug)]
pub struct Store {
    keep_rows: usize,
    keep_dead: usize,
    next_seq: u64,
    rows: VecDeque<Row>,
    audits: VecDeque<DecisionAudit>,
    chart: Minutes,
    facets: Facets,
    rules: HashMap<(String, i32, bool), Minutes>,
    dead: BTreeMap<String, Reason>,
    versions: BTreeMap<i64, i64>,
    records: u64,
    keep_offer_ids: usize,
    offer_rules: HashMap<Arc<str>, Arc<str>>,
    offer_order: VecDeque<Arc<str>>,
    responses: HashMap<Arc<str>, Minutes<RESPONSES>>,
    /// Per offer rule, per minute: offers that recorded their propensity, the sum of those
    /// propensities in ten-thousandths, and offers whose decision explored.
    propensities: HashMap<Arc<str>, Minutes<3>>,
    unattributed: u64,
    pending: HashMap<Arc<str>, Vec<(OfferResponseKind, i64)>>,
    pending_order: VecDeque<Arc<str>>,
    shadow: HashMap<String, VecDeque<DecisionAudit>>,
    lag: LagMinutes,
    /// Per offer rule, its treated and control groups as the state store held them when the
    /// rules page last read them.
    uplift: HashMap<String, crate::learning::uplift::Groups>,
}

impl Store {
    /// An empty store with the given bounds (`console.keep_decisions`, `console.chart_hours`,
    /// `console.keep_dead_letters`); it remembers 100,000 offer ids until
    /// [`Store::keep_offer_ids`] says otherwise.
    pub fn new(keep_rows: usize, chart_hours: u32, keep_dead: usize) -> Self {
        Self {
            keep_rows,
            keep_dead,
            next_seq: 1,
            rows: VecDeque::with_capacity(keep_rows.min(100_000)),
            audits: VecDeque::with_capacity(keep_rows.min(100_000)),
            chart: Minutes::new(chart_hours as usize * 60),
            facets: Facets::new(chart_hours as usize * 60),
            rules: HashMap::new(),
            dead: BTreeMap::new(),
            versions: BTreeMap::new(),
            records: 0,
            keep_offer_ids: 100_000,
            offer_rules: HashMap::new(),
            offer_order: VecDeque::new(),
            responses: HashMap::new(),
            propensities: HashMap::new(),
            uplift: HashMap::new(),
            unattributed: 0,
            pending: HashMap::new(),
            pending_order: VecDeque::new(),
            shadow: HashMap::new(),
            lag: LagMinutes::default(),
        }
    }

    /// Remembers at most `n` offer ids (`console.keep_offer_ids`).
    pub fn keep_offer_ids(mut self, n: usize) -> Self {
        self.keep_offer_ids = n.max(1);
        self
    }

    /// Remembers which rule made offer `offer_id`, forgetting the oldest offer id past the bound.
    pub fn note_offer(&mut self, offer_id: &str, rule_id: &str) {
        if self.offer_rules.contains_key(offer_id) {
            return; // a redelivered offer (at-least-once): already known
        }
        if self.offer_order.len() >= self.keep_offer_ids {
            if let Some(old) = self.offer_order.pop_front() {
                self.offer_rules.remove(&old);
            }
        }
        // The rule id is shared with the rule's response counters when it has some.
        let rule: Arc<str> = match self.responses.get_key_value(rule_id) {
            Some((k, _)) => k.clone(),
            None => Arc::from(rule_id),
        };
        let id: Arc<str> = Arc::from(offer_id);
        self.offer_rules.insert(id.clone(), rule.clone());
        self.offer_order.push_back(id);
        // Responses read before their offer count now.
        for (response, at) in self.pending.remove(offer_id).unwrap_or_default() {
            self.count_response(rule.clone(), response, at);
        }
    }

    /// Counts a customer's response to an offer towards the rule that made it. A response to an
    /// offer the console does not know yet waits for it (at most [`MAX_PENDING`]); one that waited
    /// out the bound (its offer older than the console remembers) is counted as unattributed.
    pub fn push_response(&mut self, offer_id: &str, response: OfferResponseKind, at: i64) {
        self.records += 1;
        match self.offer_rules.get(offer_id).cloned() {
            Some(rule) => self.count_response(rule, response, at),
            None => self.wait_for_offer(offer_id, response, at),
        }
    }

    fn wait_for_offer(&mut self, offer_id: &str, response: OfferResponseKind, at: i64) {
        if let Some(waiting) = self.pending.get_mut(offer_id) {
            waiting.push((response, at));
            return;
        }
        while self.pending_order.len() >= MAX_PENDING {
            let Some(old) = self.pending_order.pop_front() else {
                break;
            };
            // Ids whose offer arrived meanwhile are no longer in the map.
            self.unattributed += self.pending.remove(&old).map_or(0, |w| w.len() as u64);
        }
        let id: Arc<str> = Arc::from(offer_id);
        self.pending.insert(id.clone(), vec![(response, at)]);
        self.pending_order.push_back(id);
    }

    fn count_response(&mut self, rule: Arc<str>, response: OfferResponseKind, at: i64) {
        let key = if self.responses.contains_key(&rule) || self.responses.len() < MAX_RULES {
            rule
        } else {
            Arc::from(OTHER_RULES)
        };
        self.responses
            .entry(key)
            .or_insert_with(|| Minutes::new(DAY_MINUTES))
            .count(at, response as usize);
    }

    /// Replaces the uplift groups with the state store's latest reading.
    pub fn set_uplift(&mut self, groups: Vec<(String, crate::learning::uplift::Groups)>) {
        self.uplift = groups.into_iter().collect();
    }

    /// Offer rule `id`'s treated and control groups, when the store has counted any.
    pub fn uplift(&self, id: &str) -> Option<crate::learning::uplift::Groups> {
        self.uplift.get(id).copied()
    }

    /// The offers of rule `id` made since `since` (ms) that recorded their propensity: how
    /// many, their mean propensity, and how many explored.
    pub fn propensity_since(&self, id: &str, since: i64) -> Option<(u64, f64, u64)> {
        let [n, sum, explored] = self.propensities.get(id)?.total_since(since);
        (n > 0).then(|| (n, sum as f64 / 10_000.0 / n as f64, explored))
    }

    /// Responses to the offers of rule `id` per minute, by response, over the last day.
    pub fn responses(&self, id: &str) -> Option<&Minutes<RESPONSES>> {
        self.responses.get(id)
    }

    /// Responses to offers the console did not know (made before what it remembers), counting
    /// those still waiting for their offer.
    pub fn unattributed_responses(&self) -> u64 {
        self.unattributed + self.pending.values().map(|w| w.len() as u64).sum::<u64>()
    }

    /// The latest SHADOW audit records of rule `id` (what it would have done), newest first.
    pub fn shadow_latest(&self, id: &str) -> impl Iterator<Item = &DecisionAudit> {
        self.shadow.get(id).into_iter().flat_map(|q| q.iter().rev())
    }

    /// Keeps an offer or alert row, produced at `at` (ms), and counts an offer by its channel;
    /// returns the row with its sequence number.
    pub fn push_row(&mut self, mut row: Row, at: i64) -> Row {
        if let Some(channel) = row.channel {
            self.facets.offer(&row.rule_id, channel, at);
        }
        if let Some(p) = row.propensity {
            let known = self.propensities.contains_key(row.rule_id.as_str());
            let key: Arc<str> = if known || self.propensities.len() < MAX_RULES {
                Arc::from(row.rule_id.as_str())
            } else {
                Arc::from(OTHER_RULES)
            };
            let minutes = self
                .propensities
                .entry(key)
                .or_insert_with(|| Minutes::new(DAY_MINUTES));
            minutes.count(at, 0);
            minutes.count_by(at, 1, (p.clamp(0.0, 1.0) * 10_000.0).round() as u32);
            if row.explored {
                minutes.count(at, 2);
            }
        }
        row.seq = self.next_seq;
        self.next_seq += 1;
        self.records += 1;
        if self.rows.len() == self.keep_rows {
            self.rows.pop_front();
        }
        self.rows.push_back(row.clone());
        row
    }

    /// Counts an audit record (the chart, its rule's counters and the ruleset version) and keeps
    /// it among the latest. Records of rule changes and console use are kept, not counted.
    ///
    /// `at` is when the decision was made: the record's Kafka timestamp (the time it was
    /// produced), so the chart and the rules' last hour and day count by processing time, the
    /// same in every console, however old the events were. How far the decisions trail their
    /// events' own time (`at − decided_at`) is kept apart ([`Store::event_time_lag`]).
    pub fn push_audit(&mut self, a: DecisionAudit, at: i64) {
        self.records += 1;
        if self.audits.len() == self.keep_rows {
            self.audits.pop_front();
        }
        self.audits.push_back(a.clone());
        if !a.outcome.is_decision() {
            return;
        }
        // A roll-up record counts the decisions it stands for (`operator.audit_rollup`).
        let n = a.decisions();
        self.chart.add_n(at, a.outcome, n);
        self.facets.decisions(&a.rule_id, a.outcome, at, n);
        // A roll-up's decided_at is its first repeat's: its lag says nothing of the pipeline.
        if a.rolled_up.is_none() {
            self.lag.add(at, at - a.decided_at);
        }
        if a.outcome == DecisionOutcome::Shadow
            && (self.shadow.contains_key(&a.rule_id) || self.shadow.len() < MAX_RULES)
        {
            let latest = self.shadow.entry(a.rule_id.clone()).or_default();
            if latest.len() == KEEP_SHADOW {
                latest.pop_front();
            }
            latest.push_back(a.clone());
        }
        // Counted per rule version; a challenger's SHADOW record counts as what it would have
        // decided, so its columns compare with its champion's.
        let challenger = a.outcome == DecisionOutcome::Shadow;
        let version = (a.rule_id.clone(), a.rule_version, challenger);
        let key = if self.rules.contains_key(&version) || self.rules.len() < MAX_RULES {
            version
        } else {
            (OTHER_RULES.to_string(), 0, challenger)
        };
        let counted = match (a.outcome, a.shadow_outcome) {
            (DecisionOutcome::Shadow, Some(would)) => would,
            (outcome, _) => outcome,
        };
        self.rules
            .entry(key)
            .or_insert_with(|| Minutes::new(DAY_MINUTES))
            .add_n(at, counted, n);
        let seen = self.versions.entry(a.ruleset_version).or_insert(0);
        *seen = (*seen).max(at);
        let newest = self.versions.values().copied().max().unwrap_or(0);
        self.versions.retain(|_, at| *at > newest - VERSION_SEEN_MS);
    }

    /// The latest audit records of `customer_id`, newest first, at most `limit`.
    pub fn audits_of(&self, customer_id: &str, limit: usize) -> Vec<DecisionAudit> {
        self.audits
            .iter()
            .rev()
            .filter(|a| a.customer_id == customer_id && a.outcome.is_decision())
            .take(limit)
            .cloned()
            .collect()
    }

    /// The latest audit records of any kind, newest first, at most `limit`.
    pub fn latest_audits(&self, limit: usize) -> Vec<DecisionAudit> {
        self.audits.iter().rev().take(limit).cloned().collect()
    }

    /// Counts a dead letter and keeps it among its reason's latest.
    pub fn push_dead_letter(&mut self, d: DeadLetter) {
        self.records += 1;
        if !self.dead.contains_key(&d.error_kind) && self.dead.len() >= MAX_REASONS {
            return;
        }
        let reason = self.dead.entry(d.error_kind.clone()).or_default();
        reason.count += 1;
        if reason.latest.len() == self.keep_dead {
            reason.latest.pop_front();
        }
        if self.keep_dead > 0 {
            reason.latest.push_back(d);
        }
    }

    /// Rows passing `filter`, newest first, at most `limit`.
    pub fn rows(&self, filter: &Filter, limit: usize) -> Vec<Row> {
        self.rows
            .iter()
            .rev()
            .filter(|r| filter.matches(r))
            .take(limit)
            .cloned()
            .collect()
    }

    /// How many rows are kept.
    pub fn row_count(&self) -> usize {
        self.rows.len()
    }

    /// Decisions per minute by outcome.
    pub fn chart(&self) -> &Minutes {
        &self.chart
    }

    /// Decisions per minute by outcome that pass `filter` (see [`super::facets`]); `facts`
    /// tells a rule's product and severity.
    pub fn chart_for(&self, filter: &Filter, facts: &dyn Fn(&str) -> RuleFacts) -> Series {
        if filter.rule.is_empty()
            && filter.product.is_empty()
            && filter.severity.is_empty()
            && filter.channel.is_empty()
        {
            return super::facets::series(&self.chart);
        }
        self.facets.select(filter, facts)
    }

    /// Decisions of version `version` of rule `id` per minute by outcome over the last day, as
    /// the version in force or (`challenger`) as a shadow version, by what it would have decided.
    /// A promoted version's two periods are counted apart.
    pub fn rule(&self, id: &str, version: i32, challenger: bool) -> Option<&Minutes> {
        self.rules.get(&(id.to_string(), version, challenger))
    }

    /// Dead letters by reason.
    pub fn dead_letters(&self) -> &BTreeMap<String, Reason> {
        &self.dead
    }

    /// Ruleset versions seen recently in the audit, with when each was last seen (ms).
    pub fn versions(&self) -> &BTreeMap<i64, i64> {
        &self.versions
    }

    /// Event-time lag of the decisions made in the last hour.
    pub fn event_time_lag(&self) -> &LagMinutes {
        &self.lag
    }

    /// Records read since the console started.
    pub fn records(&self) -> u64 {
        self.records
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::minutes::MINUTE_MS;

    #[test]
    fn minutes_keep_only_their_window() {
        let mut m = Minutes::new(3);
        for minute in 0..10i64 {
            m.add(minute * MINUTE_MS, DecisionOutcome::Offered);
        }
        m.add(0, DecisionOutcome::Offered); // too old: not counted
        assert_eq!(m.buckets().count(), 3);
        assert_eq!(m.total_since(0)[DecisionOutcome::Offered as usize], 3);
        m.add(8 * MINUTE_MS + 5, DecisionOutcome::Shadow);
        assert_eq!(
            m.total_since(8 * MINUTE_MS)[DecisionOutcome::Shadow as usize],
            1
        );
    }

    #[test]
    fn the_propensity_behind_a_rules_offers_is_their_mean_with_the_explored_counted() {
        let mut s = Store::new(10, 24, 10);
        for (i, (p, explored)) in [(0.1, false), (0.3, true), (0.2, false)]
            .into_iter()
            .enumerate()
        {
            let mut row = sample(60_000 * i as i64);
            row.kind = "offer";
            row.rule_id = "card".into();
            row.propensity = Some(p);
            row.explored = explored;
            s.push_row(row, 60_000 * i as i64);
        }
        let (n, mean, explored) = s.propensity_since("card", 0).unwrap();
        assert_eq!((n, explored), (3, 1));
        assert!((mean - 0.2).abs() < 1e-9, "{mean}");
        assert_eq!(s.propensity_since("card", 120_000).map(|p| p.0), Some(1));
        assert_eq!(s.propensity_since("loan", 0), None);
    }

    #[test]
    fn rows_are_bounded_and_newest_first() {
        let mut s = Store::new(3, 1, 2);
        for i in 0..5 {
            let mut row = sample(i);
            row.rule_id = if i % 2 == 0 { "even" } else { "odd" }.into();
            s.push_row(row, i);
        }
        assert_eq!(s.row_count(), 3);
        let all = s.rows(&Filter::default(), 10);
        assert_eq!(all.iter().map(|r| r.at).collect::<Vec<_>>(), vec![4, 3, 2]);
        let even = Filter {
            rule: "even".into(),
            ..Filter::default()
        };
        assert_eq!(s.rows(&even, 10).len(), 2);
    }

    #[test]
    fn responses_count_towards_the_rule_of_a_remembered_offer() {
        let mut s = Store::new(10, 1, 1).keep_offer_ids(2);
        s.note_offer("o1", "card");
        s.note_offer("o2", "loan");
        s.note_offer("o2", "loan"); // redelivered: no second entry
        s.note_offer("o3", "card"); // forgets o1
        s.push_response("o2", OfferResponseKind::Accepted, 60_000);
        s.push_response("o3", OfferResponseKind::Clicked, 60_000);
        s.push_response("o3", OfferResponseKind::Accepted, 61_000);
        s.push_response("o1", OfferResponseKind::Accepted, 62_000);
        // A response read before its offer waits for it.
        s.push_response("o4", OfferResponseKind::Declined, 63_000);
        assert_eq!(s.unattributed_responses(), 2, "o1 forgotten, o4 waiting");
        s.note_offer("o4", "loan");
        let loan = s.responses("loan").unwrap().total_since(0);
        assert_eq!(loan[OfferResponseKind::Declined as usize], 1);
        let card = s.responses("card").unwrap().total_since(0);
        assert_eq!(card[OfferResponseKind::Accepted as usize], 1);
        assert_eq!(card[OfferResponseKind::Clicked as usize], 1);
        let loan = s.responses("loan").unwrap().total_since(0);
        assert_eq!(loan[OfferResponseKind::Accepted as usize], 1);
        assert_eq!(s.unattributed_responses(), 1, "o1 was forgotten");
    }

    fn audit(rule_version: i32, outcome: DecisionOutcome, decided_at: i64) -> DecisionAudit {
        DecisionAudit {
            audit_id: "a".into(),
            customer_id: "C1".into(),
            trigger_event_id: "E1".into(),
            rule_id: "r".into(),
            rule_version,
            ruleset_version: 7,
            outcome,
            decision_id: None,
            reasons: vec![],
            features: Default::default(),
            decided_at,
            shadow_outcome: (outcome == DecisionOutcome::Shadow)
                .then_some(DecisionOutcome::SuppressedCooldown),
            features_as_of: Some(decided_at),
            propensity: None,
            rolled_up: None,
        }
    }

    #[test]
    fn decisions_count_by_when_they_were_made_per_version_and_role() {
        let now = 100 * DAY_MINUTES as i64 * MINUTE_MS;
        let mut s = Store::new(10, 1, 1);
        // Back-dated events: decided now, about events of three days ago.
        let three_days = 3 * DAY_MINUTES as i64 * MINUTE_MS;
        s.push_audit(audit(1, DecisionOutcome::Alerted, now - three_days), now);
        s.push_audit(audit(2, DecisionOutcome::Shadow, now - three_days), now);
        s.push_audit(audit(2, DecisionOutcome::Shadow, now - 1_000), now);
        let champion = s.rule("r", 1, false).unwrap().total_since(now - 3_600_000);
        assert_eq!(champion[DecisionOutcome::Alerted as usize], 1);
        let challenger = s.rule("r", 2, true).unwrap().total_since(now - 3_600_000);
        assert_eq!(
            challenger[DecisionOutcome::SuppressedCooldown as usize],
            2,
            "a challenger counts what it would have decided"
        );
        assert!(s.rule("r", 2, false).is_none());
        assert_eq!(s.chart().total_since(now - 60_000).iter().sum::<u64>(), 3);
        let (mean, max) = s.event_time_lag().since(now - 60_000).unwrap();
        assert_eq!(max, three_days);
        assert_eq!(mean, (2 * three_days + 1_000) / 3);
    }

    fn sample(at: i64) -> Row {
        Row {
            seq: 0,
            kind: "alert",
            at,
            customer_id: "c".into(),
            rule_id: "r".into(),
            rule_version: 1,
            product: None,
            channel: None,
            offer_code: None,
            score: None,
            propensity: None,
            explored: false,
            alert_kind: Some("FRAUD"),
            severity: Some("HIGH"),
            reasons: vec![],
            features: vec![],
        }
    }
}
