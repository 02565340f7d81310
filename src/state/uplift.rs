//! Where each offer rule's uplift counts are kept, beside the learned models (the same
//! [`super::models::ModelStore`]): every instance adds its customers' exposures and conversions,
//! and every instance and the console read the same totals.
//!
//! Layout, per application (its consumer group) and offer rule, one hash tag:
//! - `nbo:uplift:{<namespace>:<rule-id>}`: a hash with `format` ([`UPLIFT_FORMAT`]) and
//!   `treated:n`, `treated:k`, `control:n`, `control:k` (customers exposed, and of them
//!   converted, per group);
//! - `nbo:uplift:{<namespace>:<rule-id>}:seen:<day>`: the exposures and conversions counted on
//!   that day (event time), as `n:<exposure-id>` and `k:<exposure-id>`, expiring
//!   [`super::models::REPLAY_WINDOW_SECS`] after its last count.
//!
//! Delivery is the learned models' (see `state::models`): the worker counts an interval's tallies
//! before it stores the customers' state that marks them counted, and the day's set counts a
//! replayed tally once.

use super::StateError;
use crate::learning::uplift::{Groups, Tally};
use std::collections::HashMap;

/// Version of the uplift layout, the hash's `format` field.
pub const UPLIFT_FORMAT: u32 = 1;

/// Counts the tallies of one rule and day, each once: KEYS = uplift hash, day's seen set;
/// ARGV = seen-set TTL in seconds, format, then per tally its seen member and hash field.
/// Answers the hash. One script per rule and day, not per tally: a checkpoint's thousands of
/// exposures cost Redis a few commands.
pub(super) const RECORD: &str = r"
for i = 3, #ARGV, 2 do
  if redis.call('SADD', KEYS[2], ARGV[i]) == 1 then
    redis.call('HINCRBY', KEYS[1], ARGV[i + 1], 1)
  end
end
redis.call('EXPIRE', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 'format', ARGV[2])
return redis.call('HGETALL', KEYS[1])
";

/// `nbo:uplift:{<namespace>:<rule-id>}`.
pub fn uplift_key(namespace: &str, rule_id: &str) -> String {
    format!("nbo:uplift:{{{namespace}:{rule_id}}}")
}

/// The hash field a tally adds one to.
pub(super) fn field(t: &Tally) -> String {
    format!(
        "{}:{}",
        t.group.as_str(),
        if t.converted { "k" } else { "n" }
    )
}

/// The member of the day's seen set that stands for a tally.
pub(super) fn seen_member(t: &Tally) -> String {
    format!("{}:{}", if t.converted { "k" } else { "n" }, t.exposure_id)
}

/// The groups in the hash `key`.
pub(super) fn parse(key: &str, fields: &HashMap<String, String>) -> Result<Groups, StateError> {
    if let Some(format) = fields.get("format") {
        if format != &UPLIFT_FORMAT.to_string() {
            return Err(StateError::Corrupt(format!(
                "{key}: uplift format {format}, this release reads format {UPLIFT_FORMAT}"
            )));
        }
    }
    let mut groups = Groups::default();
    for (field, value) in fields {
        let Some((group, which)) = field.split_once(':') else {
            continue;
        };
        let arm = match group {
            "treated" => &mut groups.treated,
            "control" => &mut groups.control,
            _ => continue,
        };
        let n: u64 = value
            .parse()
            .map_err(|_| StateError::Corrupt(format!("{key}: {field} = {value:?}")))?;
        match which {
            "n" => arm.customers = n,
            "k" => arm.converted = n,
            _ => {}
        }
    }
    Ok(groups)
}

/// Uplift counts in this process only (the memory models' share).
#[derive(Debug, Default)]
pub(super) struct MemoryUplift {
    groups: HashMap<String, Groups>,
    seen: std::collections::HashSet<String>,
}

impl MemoryUplift {
    /// Counts each tally not counted before; answers the totals of the rules touched.
    pub(super) fn record(&mut self, tallies: &[Tally]) -> Vec<(String, Groups)> {
        let mut touched: Vec<String> = Vec::new();
        for t in tallies {
            let member = format!("{}:{}", t.rule_id, seen_member(t));
            if self.seen.insert(member) {
                self.groups.entry(t.rule_id.clone()).or_default().add(t);
            }
            if !touched.contains(&t.rule_id) {
                touched.push(t.rule_id.clone());
            }
        }
        touched
            .into_iter()
            .map(|r| {
                let g = self.groups.get(&r).copied().unwrap_or_default();
                (r, g)
            })
            .collect()
    }

    /// The totals of `rule_ids` (those with counts).
    pub(super) fn load(&self, rule_ids: &[String]) -> Vec<(String, Groups)> {
        rule_ids
            .iter()
            .filter_map(|r| self.groups.get(r).map(|g| (r.clone(), *g)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learning::uplift::Group;

    fn tally(id: &str, group: Group, converted: bool) -> Tally {
        Tally {
            exposure_id: id.into(),
            exposed_at: 1_000,
            counted_at: 1_000,
            rule_id: "offer-a".into(),
            group,
            converted,
        }
    }

    #[test]
    fn each_exposure_and_conversion_counts_once() {
        let mut m = MemoryUplift::default();
        m.record(&[
            tally("e1", Group::Treated, false),
            tally("e1", Group::Treated, true),
            tally("e2", Group::Control, false),
        ]);
        let totals = m.record(&[
            tally("e1", Group::Treated, true),
            tally("e2", Group::Control, false),
        ]);
        let g = totals[0].1;
        assert_eq!((g.treated.customers, g.treated.converted), (1, 1));
        assert_eq!((g.control.customers, g.control.converted), (1, 0));
    }

    #[test]
    fn a_hash_is_read_back_and_another_format_refused() {
        let key = uplift_key("app", "offer-a");
        let fields: HashMap<String, String> = [
            ("format", "1"),
            ("treated:n", "100"),
            ("treated:k", "12"),
            ("control:n", "10"),
            ("control:k", "1"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let g = parse(&key, &fields).unwrap();
        assert_eq!((g.treated.customers, g.treated.converted), (100, 12));
        assert_eq!((g.control.customers, g.control.converted), (10, 1));
        let other: HashMap<String, String> = [("format".to_string(), "2".to_string())].into();
        let err = parse(&key, &other).unwrap_err().to_string();
        assert!(
            err.contains("nbo:uplift:{app:offer-a}") && err.contains("format 2"),
            "{err}"
        );
    }
}
