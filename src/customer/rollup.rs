//! [`Rollups`]: the cooldown suppressions a customer's state counts instead of auditing each one
//! (`operator.audit_rollup`).
//!
//! A busy alert or offer rule held back by its cooldown decides SUPPRESSED_COOLDOWN at every
//! trigger, and most audit records are those repeats. With a roll-up window `W`, the first such
//! decision of a (rule, version) has its audit record as before and opens a window
//! `[at, at + W)` in event time; the repeats within it are counted here, with the first and last
//! trigger, and go out as one roll-up record when the window is closed:
//! - by the customer's first event at or past its end (the next repeat then has a record of its
//!   own and opens the next window);
//! - by the rule raising its alert or making its offer again: a new cooldown starts, and its
//!   first suppression has a record of its own;
//! - by the customer's erasure, before the state is cleared.
//!
//! Closing is driven by the customer's own events, never by a clock, so a replay closes the
//! same windows at the same events: the records are the same, and exactly-once keeps them in
//! the event's outbox like any decision. The counts are part of the stored state until then.

use serde::{Deserialize, Serialize};

/// The open roll-up windows of one customer, at most one per (rule, version).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rollups(Vec<OpenRollup>);

/// One open window: the repeats of a (rule, version)'s cooldown suppression counted so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenRollup {
    /// The rule.
    pub rule_id: String,
    /// Its version.
    pub rule_version: i32,
    /// End of the window (event time, exclusive).
    pub until: i64,
    /// What is counted (`None`: no repeat yet; the window then closes with no record).
    pub counted: Option<Counted>,
}

/// The repeats one window counted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Counted {
    /// How many.
    pub count: u32,
    /// The first one's trigger event id.
    pub first_event_id: String,
    /// The first one's event time.
    pub first_at: i64,
    /// The version of the whole rule set when the first one was decided.
    pub ruleset_version: i64,
    /// The last one's trigger event id.
    pub last_event_id: String,
    /// The last one's event time.
    pub last_at: i64,
}

/// What [`Rollups::suppressed`] made of a cooldown suppression.
#[derive(Debug, PartialEq)]
pub enum Suppressed {
    /// Counted in its rule's open window: no record of its own.
    Counted,
    /// Gets a record of its own, and opened a window; the window it closed, if that one had
    /// counted repeats, is to be written first.
    Recorded(Option<OpenRollup>),
}

impl Rollups {
    /// Whether no window is open.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The open windows.
    pub fn open(&self) -> &[OpenRollup] {
        &self.0
    }

    /// A cooldown suppression by (`rule_id`, `version`) at event time `at`, triggered by
    /// `event_id` under rule set `ruleset_version`: counted in the rule's open window when `at`
    /// falls before its end; otherwise the window (if any) closes and a new one of `window_ms`
    /// opens at `at`.
    pub fn suppressed(
        &mut self,
        (rule_id, version, ruleset_version): (&str, i32, i64),
        event_id: &str,
        at: i64,
        window_ms: i64,
    ) -> Suppressed {
        let open = self
            .0
            .iter()
            .position(|r| r.rule_version == version && r.rule_id == rule_id);
        let closed = match open {
            Some(i) if at < self.0[i].until => {
                let r = &mut self.0[i];
                match &mut r.counted {
                    Some(c) => {
                        c.count += 1;
                        c.last_event_id.clear();
                        c.last_event_id.push_str(event_id);
                        c.last_at = at;
                    }
                    None => {
                        r.counted = Some(Counted {
                            count: 1,
                            first_event_id: event_id.to_owned(),
                            first_at: at,
                            ruleset_version,
                            last_event_id: event_id.to_owned(),
                            last_at: at,
                        })
                    }
                }
                return Suppressed::Counted;
            }
            Some(i) => Some(self.0.remove(i)),
            None => None,
        };
        self.0.push(OpenRollup {
            rule_id: rule_id.to_owned(),
            rule_version: version,
            until: at.saturating_add(window_ms),
            counted: None,
        });
        Suppressed::Recorded(closed.filter(|r| r.counted.is_some()))
    }

    /// Closes the window of (`rule_id`, `version`), if one is open: the rule acted (raised its
    /// alert, made its offer), so a new cooldown starts. Returns it if it counted repeats.
    pub fn close_rule(&mut self, rule_id: &str, version: i32) -> Option<OpenRollup> {
        let i = self
            .0
            .iter()
            .position(|r| r.rule_version == version && r.rule_id == rule_id)?;
        Some(self.0.remove(i)).filter(|r| r.counted.is_some())
    }

    /// Closes the windows that end at or before `now` (all of them with `i64::MAX`) and calls
    /// `closed` with each that counted repeats, in the order they were opened.
    pub fn close_due(&mut self, now: i64, mut closed: impl FnMut(OpenRollup)) {
        if self.0.iter().all(|r| r.until > now) {
            return;
        }
        let mut kept = Vec::with_capacity(self.0.len());
        for r in self.0.drain(..) {
            if r.until > now {
                kept.push(r);
            } else if r.counted.is_some() {
                closed(r);
            }
        }
        self.0 = kept;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: i64 = 1_000;

    #[test]
    fn repeats_within_the_window_are_counted_and_close_with_the_next_window() {
        let mut r = Rollups::default();
        assert_eq!(
            r.suppressed(("a", 1, 7), "e0", 100, W),
            Suppressed::Recorded(None)
        );
        assert_eq!(r.suppressed(("a", 1, 7), "e1", 200, W), Suppressed::Counted);
        assert_eq!(
            r.suppressed(("a", 1, 7), "e2", 1_099, W),
            Suppressed::Counted
        );
        let Suppressed::Recorded(Some(closed)) = r.suppressed(("a", 1, 7), "e3", 1_100, W) else {
            panic!("past the window: a record of its own, the window closed");
        };
        assert_eq!(
            closed.counted,
            Some(Counted {
                count: 2,
                first_event_id: "e1".into(),
                first_at: 200,
                ruleset_version: 7,
                last_event_id: "e2".into(),
                last_at: 1_099,
            })
        );
        assert_eq!(r.open().len(), 1, "a new window, from e3");
        assert_eq!(r.open()[0].until, 2_100);
    }

    #[test]
    fn a_rule_that_acts_again_closes_its_window() {
        let mut r = Rollups::default();
        r.suppressed(("a", 1, 7), "e0", 0, W);
        assert_eq!(r.close_rule("a", 1), None, "nothing counted: no record");
        assert!(r.is_empty());
        r.suppressed(("a", 1, 7), "e1", 10, W);
        r.suppressed(("a", 1, 7), "e2", 20, W);
        let closed = r.close_rule("a", 1).expect("e2 counted");
        assert_eq!(closed.counted.map(|c| c.count), Some(1));
        assert_eq!(
            r.suppressed(("a", 1, 7), "e3", 30, W),
            Suppressed::Recorded(None),
            "the next cooldown's first suppression has its own record"
        );
    }

    #[test]
    fn each_rule_version_has_a_window_of_its_own() {
        let mut r = Rollups::default();
        r.suppressed(("a", 1, 7), "e0", 0, W);
        assert_eq!(
            r.suppressed(("a", 2, 7), "e1", 10, W),
            Suppressed::Recorded(None)
        );
        assert_eq!(
            r.suppressed(("b", 1, 7), "e2", 10, W),
            Suppressed::Recorded(None)
        );
        assert_eq!(r.suppressed(("a", 1, 7), "e3", 10, W), Suppressed::Counted);
        assert_eq!(r.open().len(), 3);
    }

    #[test]
    fn a_window_closes_at_the_first_time_past_its_end_and_an_empty_one_says_nothing() {
        let mut r = Rollups::default();
        r.suppressed(("a", 1, 7), "e0", 0, W);
        r.suppressed(("a", 1, 7), "e1", 5, W);
        r.suppressed(("b", 1, 7), "e2", 500, W);
        let mut closed = Vec::new();
        r.close_due(999, |c| closed.push(c));
        assert!(closed.is_empty(), "nothing ends before 1000");
        r.close_due(1_200, |c| closed.push(c));
        assert_eq!(closed.len(), 1, "a's window ended and counted e1");
        assert_eq!(closed[0].rule_id, "a");
        assert_eq!(r.open().len(), 1, "b's is still open");
        r.close_due(i64::MAX, |c| closed.push(c));
        assert!(r.is_empty());
        assert_eq!(
            closed.len(),
            1,
            "b counted nothing: closed without a record"
        );
    }
}
