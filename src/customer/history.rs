//! The customer's contact history: the offers made, with what the customer did with them, and
//! the alerts raised. The one place they are recorded ([`ContactHistory::record_offer`],
//! [`ContactHistory::record_alert`], [`ContactHistory::apply_response`]), pruned (to a
//! [`Retention`], on every record) and read (alert cooldowns; [`HistoryView`], what the contact
//! policy checks an offer against).
//!
//! A customer has two: the real one, and the challengers' (shadow versions of rules), whose
//! would-be offers and alerts are named by [`shadow_key`], so a challenger's world is the real
//! history with its champion's offers replaced by its own ([`HistoryView::challenger`]).

use crate::event::{AlertLabel, OfferResponseKind, ProductCategory};
use serde::{Deserialize, Serialize};

/// An alert raised for the customer: for alert cooldowns, and for its case's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    /// Rule that raised it (in the challengers' history, its [`shadow_key`]).
    pub rule_id: String,
    /// Its `raised_at` (the trigger's event time).
    pub at: i64,
    /// Its `alert_id` (empty in the challengers' history, whose alerts are never sent, and for
    /// an alert raised before alerts kept their ids).
    pub alert_id: String,
    /// The version of the rule that raised it.
    pub version: i32,
    /// How its case was closed (`bank.alert-outcomes.v1`), once it was.
    pub label: Option<AlertLabel>,
    /// Every challenger (shadow version) of its rule when it was raised, with what it did on the
    /// same trigger: the champion and its challengers compare on the same alerts when the case
    /// is closed.
    pub challengers: Vec<(i32, Verdict)>,
}

/// What a challenger did on the trigger of its champion's alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// Its condition did not hold (or it does not trigger on that event): no alert.
    Silent,
    /// It would have raised the alert too.
    Alerted,
    /// Its condition held, but it had raised an alert for this customer within its cooldown (for
    /// this episode, or an earlier one).
    Cooling,
}

impl Verdict {
    /// The `fired` label of `nbo_challenger_alert_outcomes_total`: `no`, `yes` or `cooldown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Silent => "no",
            Verdict::Alerted => "yes",
            Verdict::Cooling => "cooldown",
        }
    }
}

/// What an alert's outcome found in the history ([`ContactHistory::label_alert`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Labelled<'a> {
    /// The alert, labelled now: its outcome counts.
    New(&'a AlertRecord),
    /// The alert was labelled before (a replayed or repeated outcome): nothing new.
    Again,
    /// No alert of that id is held (never raised for this customer, or pruned, or erased).
    Unknown,
}

/// An offer made, with what the customer did with it (from `bank.offer-responses.v1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OfferRecord {
    /// Rule that made the offer (in the challengers' history, its [`shadow_key`]).
    pub rule_id: String,
    /// Product family offered (a decline suppresses the whole family).
    pub product: ProductCategory,
    /// The offer's id.
    pub offer_id: String,
    /// Its `decided_at`.
    pub at: i64,
    /// The latest response, if any.
    pub response: Option<OfferResponseKind>,
    /// Event time of that response.
    pub responded_at: Option<i64>,
    /// What the offer's learned model has counted of it ([`Counted`] bits): an offer counts
    /// once as a trial and once as a positive, however many responses it gets.
    pub counted: u8,
    /// The configured propensity the offer was made at (what its learned model expected);
    /// 0 when not known (an offer made before offers learned), and then it is not learned from.
    pub configured: f64,
}

/// The bits of [`OfferRecord::counted`].
pub struct Counted;

impl Counted {
    /// Counted as a trial (it got a response).
    pub const TRIAL: u8 = 1;
    /// Counted as a positive (it was accepted).
    pub const POSITIVE: u8 = 2;
    /// Counted as its customer's exposure to the rule, for uplift: the first offer of the rule
    /// (or, for a control-group member, the first offer held back) in an uplift window.
    pub const EXPOSED: u8 = 4;
    /// Counted as a conversion of that exposure: the customer opened a product of the offer's
    /// family within the window.
    pub const CONVERTED: u8 = 8;
}

/// What one response adds to its offer's learned model: the offer, and whether it is a new
/// trial and a new positive.
#[derive(Debug, Clone, PartialEq)]
pub struct Learnt<'a> {
    /// The offer answered.
    pub offer: &'a OfferRecord,
    /// First response to it: one more trial.
    pub trial: bool,
    /// First acceptance of it: one more positive.
    pub positive: bool,
}

impl OfferRecord {
    /// An offer of `product` made at `at` by rule `rule_id`, not yet answered.
    pub fn new(rule_id: String, product: ProductCategory, offer_id: String, at: i64) -> Self {
        Self {
            rule_id,
            product,
            offer_id,
            at,
            response: None,
            responded_at: None,
            counted: 0,
            configured: 0.0,
        }
    }

    /// When the customer declined this offer, if they did.
    pub fn declined_at(&self) -> Option<i64> {
        match self.response {
            Some(OfferResponseKind::Declined) => self.responded_at.or(Some(self.at)),
            _ => None,
        }
    }
}

/// How long records are kept, in milliseconds: long enough for every rule and policy that reads
/// them. The operator works it out once per rule set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// An offer, from when it was made, or declined if it was: the contact period, the longest
    /// offer cooldown, the decline suppression and the uplift window, whichever is longest.
    pub offers_ms: i64,
    /// An alert, from when it was raised: the longest alert cooldown of the rule set (another
    /// rule's record must outlive a rule's shorter cooldown), the longest feature window, or
    /// (for the customer's real alerts) `operator.alert_outcome_window`, for its case's outcome,
    /// whichever is longest.
    pub alerts_ms: i64,
}

/// Offers made and alerts raised, oldest first. Written only through its operations, so every
/// write applies the retention.
///
/// Part of the stored [`super::CustomerState`]: its fields, in this order, are the encoding.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContactHistory {
    offers: Vec<OfferRecord>,
    alerts: Vec<AlertRecord>,
}

impl ContactHistory {
    /// A history holding these records as they are (read from an earlier stored format).
    pub fn from_records(offers: Vec<OfferRecord>, alerts: Vec<AlertRecord>) -> Self {
        Self { offers, alerts }
    }

    /// The offers held, oldest first.
    pub fn offers(&self) -> &[OfferRecord] {
        &self.offers
    }

    /// The alerts held, oldest first.
    pub fn alerts(&self) -> &[AlertRecord] {
        &self.alerts
    }

    /// Records an offer made, after dropping the offers older than the retention at its time.
    pub fn record_offer(&mut self, offer: OfferRecord, keep: &Retention) {
        let at = offer.at;
        self.offers
            .retain(|c| at - c.declined_at().unwrap_or(c.at) < keep.offers_ms);
        self.offers.push(offer);
    }

    /// Records alert `alert_id` raised by version `version` of rule `rule_id` at `at`, after
    /// dropping the alerts older than the retention at that time.
    pub fn record_alert(
        &mut self,
        rule_id: String,
        at: i64,
        (alert_id, version): (String, i32),
        keep: &Retention,
    ) {
        self.alerts.retain(|a| at - a.at < keep.alerts_ms);
        self.alerts.push(AlertRecord {
            rule_id,
            at,
            alert_id,
            version,
            label: None,
            challengers: Vec::new(),
        });
    }

    /// Notes, on alert `alert_id`, its rule's challengers' verdicts on the same trigger.
    pub fn note_challengers(&mut self, alert_id: &str, verdicts: Vec<(i32, Verdict)>) {
        if let Some(alert) = self.alerts.iter_mut().find(|a| a.alert_id == alert_id) {
            alert.challengers = verdicts;
        }
    }

    /// Labels alert `alert_id` with its case's outcome, the first time one arrives.
    pub fn label_alert(&mut self, alert_id: &str, label: AlertLabel) -> Labelled<'_> {
        let Some(alert) = self
            .alerts
            .iter_mut()
            .find(|a| !a.alert_id.is_empty() && a.alert_id == alert_id)
        else {
            return Labelled::Unknown;
        };
        if alert.label.is_some() {
            return Labelled::Again;
        }
        alert.label = Some(label);
        Labelled::New(alert)
    }

    /// Whether rule `rule_id`'s latest alert is within `cooldown_ms` of `at`, before or after it
    /// (a late event is held back by an alert raised after it, too).
    pub fn alert_cooling(&self, rule_id: &str, at: i64, cooldown_ms: i64) -> bool {
        let last = self
            .alerts
            .iter()
            .filter(|a| a.rule_id == rule_id)
            .map(|a| a.at)
            .max();
        last.is_some_and(|last| (at - last).abs() < cooldown_ms)
    }

    /// Marks what a response to offer `offer_id` (`accepted` or not) teaches its model, and
    /// answers it when that is something not counted before (`None`: nothing new, or the offer
    /// is not held, or its configured propensity is not known).
    pub fn learn(&mut self, offer_id: &str, accepted: bool) -> Option<Learnt<'_>> {
        let offer = self
            .offers
            .iter_mut()
            .find(|c| c.offer_id == offer_id && c.configured > 0.0)?;
        let trial = offer.counted & Counted::TRIAL == 0;
        let positive = accepted && offer.counted & Counted::POSITIVE == 0;
        offer.counted |= Counted::TRIAL | if accepted { Counted::POSITIVE } else { 0 };
        (trial || positive).then_some(Learnt {
            offer,
            trial,
            positive,
        })
    }

    /// Whether a record named `key` was counted as an exposure within `window_ms` of `at` (before
    /// or after it: a late event is counted against an exposure made after it, too).
    pub fn exposed_within(&self, key: &str, at: i64, window_ms: i64) -> bool {
        self.offers.iter().any(|c| {
            c.rule_id == key && c.counted & Counted::EXPOSED != 0 && (at - c.at).abs() < window_ms
        })
    }

    /// A product of family `product` opened at `at`: marks every exposure of that family it
    /// converts (one made at most `window_ms` before it, not converted yet) and answers their
    /// records.
    pub fn convert(
        &mut self,
        product: ProductCategory,
        at: i64,
        window_ms: i64,
    ) -> Vec<&OfferRecord> {
        self.offers
            .iter_mut()
            .filter(|c| {
                c.product == product
                    && c.counted & (Counted::EXPOSED | Counted::CONVERTED) == Counted::EXPOSED
                    && c.at <= at
                    && at - c.at < window_ms
            })
            .map(|c| {
                c.counted |= Counted::CONVERTED;
                &*c
            })
            .collect()
    }

    /// The customer's `response` to offer `offer_id`, at event time `at`. A response older than
    /// the one held, or to an offer not held (pruned, or made before a reset), changes nothing.
    pub fn apply_response(&mut self, offer_id: &str, response: OfferResponseKind, at: i64) {
        if let Some(offer) = self.offers.iter_mut().find(|c| c.offer_id == offer_id) {
            if offer.responded_at.is_none_or(|t| t <= at) {
                offer.response = Some(response);
                offer.responded_at = Some(at);
            }
        }
    }
}

/// How a challenger's own would-be offers and alerts are named in the challengers' history: by
/// rule id *and* version, so a new challenger starts with a history of its own.
pub fn shadow_key(rule_id: &str, version: i32) -> String {
    format!("{rule_id}@v{version}")
}

/// How a control-group member's first held-back offer of rule `rule_id` is named in the
/// challengers' history (`CustomerState::shadow`), where uplift finds it: never a challenger's
/// [`shadow_key`], so no decision reads it.
pub fn control_key(rule_id: &str) -> String {
    format!("{rule_id}@control")
}

/// The rule of a [`control_key`] (`None`: a challenger's record).
pub fn control_rule(key: &str) -> Option<&str> {
    key.strip_suffix("@control")
}

/// The offers a decision is checked against. For a champion that is the customer's contact
/// history; for a challenger it is the world in which the challenger had acted instead of its
/// champion: the history without its champion's offers, plus the challenger's own would-be offers
/// (`CustomerState::shadow`). The frequency cap, cooldowns and decline suppression all read this
/// view, so a challenger is judged as if it acted and never changes what the champion decides.
#[derive(Debug, Clone, Copy)]
pub struct HistoryView<'a> {
    offers: &'a [OfferRecord],
    /// (rule id, the challenger's [`shadow_key`], the challengers' records).
    challenger: Option<(&'a str, &'a str, &'a [OfferRecord])>,
}

impl<'a> HistoryView<'a> {
    /// The customer's real contact history.
    pub fn real(history: &'a ContactHistory) -> Self {
        Self {
            offers: &history.offers,
            challenger: None,
        }
    }

    /// The history as rule `rule_id`'s challenger, whose records in `shadow` are named `key`
    /// ([`shadow_key`]), would have had it.
    pub fn challenger(
        real: &'a ContactHistory,
        shadow: &'a ContactHistory,
        rule_id: &'a str,
        key: &'a str,
    ) -> Self {
        Self {
            offers: &real.offers,
            challenger: Some((rule_id, key, &shadow.offers)),
        }
    }

    /// The offers in this history.
    pub fn offers(&self) -> impl Iterator<Item = &'a OfferRecord> + '_ {
        let (id, key, own): (&str, &str, &[OfferRecord]) = self.challenger.unwrap_or(("", "", &[]));
        let challenged = self.challenger.is_some();
        self.offers
            .iter()
            .filter(move |c| !challenged || c.rule_id != id)
            .chain(own.iter().filter(move |c| c.rule_id == key))
    }

    /// Whether offer `c` of this history was made by rule `rule_id` (its cooldown applies).
    pub fn by_rule(&self, c: &OfferRecord, rule_id: &str) -> bool {
        c.rule_id == rule_id
            || self
                .challenger
                .is_some_and(|(id, key, _)| id == rule_id && c.rule_id == key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEEP: Retention = Retention {
        offers_ms: 100,
        alerts_ms: 50,
    };

    fn offer(id: &str, at: i64) -> OfferRecord {
        OfferRecord::new("r".into(), ProductCategory::Loan, id.into(), at)
    }

    #[test]
    fn a_record_drops_what_its_retention_no_longer_needs() {
        let mut h = ContactHistory::default();
        h.record_offer(offer("o1", 0), &KEEP);
        h.record_offer(offer("o2", 10), &KEEP);
        h.apply_response("o2", OfferResponseKind::Declined, 60);
        h.record_offer(offer("o3", 120), &KEEP);
        // o1 is 120 old; o2 was declined 60 ago, and a declined offer is kept from its decline.
        let ids: Vec<_> = h.offers().iter().map(|o| o.offer_id.as_str()).collect();
        assert_eq!(ids, ["o2", "o3"]);

        h.record_alert("a".into(), 0, (String::new(), 1), &KEEP);
        h.record_alert("b".into(), 40, (String::new(), 1), &KEEP);
        h.record_alert("a".into(), 60, (String::new(), 1), &KEEP);
        let kept: Vec<_> = h.alerts().iter().map(|a| a.at).collect();
        assert_eq!(kept, [40, 60]);
    }

    #[test]
    fn an_older_response_does_not_replace_a_newer_one() {
        let mut h = ContactHistory::default();
        h.record_offer(offer("o1", 0), &KEEP);
        h.apply_response("o1", OfferResponseKind::Clicked, 20);
        h.apply_response("o1", OfferResponseKind::Declined, 10);
        h.apply_response("unknown", OfferResponseKind::Declined, 30);
        let o = &h.offers()[0];
        assert_eq!(
            (o.response, o.responded_at),
            (Some(OfferResponseKind::Clicked), Some(20))
        );
        assert_eq!(o.declined_at(), None);
    }

    #[test]
    fn an_alert_cools_down_on_both_sides_of_its_time() {
        let mut h = ContactHistory::default();
        h.record_alert("a".into(), 100, (String::new(), 1), &KEEP);
        assert!(h.alert_cooling("a", 130, 40));
        assert!(h.alert_cooling("a", 70, 40));
        assert!(!h.alert_cooling("a", 140, 40));
        assert!(!h.alert_cooling("b", 100, 40));
    }
}
