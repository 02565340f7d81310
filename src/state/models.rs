//! Where the learned models are kept, so they survive restarts and rebalances and are shared by
//! every instance: Redis ([`RedisModels`]), or memory for a single process ([`MemoryModels`]).
//!
//! Layout, per application and offer rule (one hash tag, so one Redis Cluster slot). The
//! namespace is the application's consumer group (`kafka.group_id`): its instances share their
//! models, and two applications on one Redis (two tenants, two test runs) keep theirs apart.
//! - `nbo:model:{<namespace>:<rule-id>}`: a hash with `format` ([`MODEL_FORMAT`]) and, per
//!   segment, `n:<segment>` (trials), `k:<segment>` (positives) and `e:<segment>` (the
//!   positives the configured model expected of those trials); where the rule's propensity
//!   scores features, also `hn:<bin>:<segment>` and `hk:<bin>:<segment>`, the trials and
//!   positives whose configured propensity fell in each bin of the model's ranking histogram
//!   (`learning::ranking`, for its AUC);
//! - `nbo:model:{<namespace>:<rule-id>}:seen:<day>`: offers made that day and counted lately, as
//!   `t:<offer-id>` (as a trial) and `p:<offer-id>` (as a positive); the set expires
//!   [`REPLAY_WINDOW_SECS`] after its last count.
//!
//! Delivery: an offer counts once. The customer's contact history marks what was counted of
//! each offer it holds, so a second response to an offer (ACCEPTED after DELIVERED) adds only
//! what is new. The worker records a checkpoint interval's observations *before* it stores the
//! customers' state, and one script per observation counts it only if its offer is not in the
//! day's set yet: a crash between the two replays the responses against marks that were not
//! stored, and the set counts them once; a crash before both replays them into a store that
//! never saw them. A replayed response is never counted twice and never lost, as long as the
//! replay comes within the window (a checkpoint's write is retried, then its partitions go to
//! another instance; neither takes days).

use super::redis::RedisStore;
use super::uplift;
use super::StateError;
use crate::learning::model::{Counts, ModelTotals, Observation};
use crate::learning::ranking::Ranking;
use crate::learning::uplift::{Groups, Tally};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// Version of the model layout, the hash's `format` field.
pub const MODEL_FORMAT: u32 = 1;

/// Where models are kept.
#[async_trait::async_trait]
pub trait ModelStore: Send + Sync {
    /// Counts each observation's offer as a trial, and as a positive if it accepted, unless it
    /// was counted before; answers the totals of every model touched, in the store.
    async fn record(&self, observations: &[Observation]) -> Result<Vec<ModelTotals>, StateError>;
    /// Every model of the rules `rule_ids`.
    async fn load(&self, rule_ids: &[String]) -> Result<Vec<ModelTotals>, StateError>;
    /// Counts each uplift exposure and conversion unless it was counted before (see
    /// `state::uplift`); answers the groups of every rule touched, in the store.
    async fn record_uplift(&self, tallies: &[Tally]) -> Result<Vec<(String, Groups)>, StateError>;
    /// The uplift groups of the rules `rule_ids` that have any.
    async fn load_uplift(&self, rule_ids: &[String]) -> Result<Vec<(String, Groups)>, StateError>;
}

/// How long the store remembers an offer it counted: longer than any replay of its response.
pub const REPLAY_WINDOW_SECS: u64 = 2 * 86_400;

/// Counts an observation once: KEYS = model hash, day's seen set; ARGV = offer id, segment,
/// trial (1/0), positive (1/0), seen-set TTL in seconds, format, expected positives of the
/// trial, the score's ranking bin (empty: not ranked). Answers the model's trials, positives and expected positives (the last as text: a Lua
/// number would come back truncated to an integer).
const RECORD: &str = r"
local offer, segment = ARGV[1], ARGV[2]
if ARGV[3] == '1' and redis.call('SADD', KEYS[2], 't:' .. offer) == 1 then
  redis.call('HINCRBY', KEYS[1], 'n:' .. segment, 1)
  redis.call('HINCRBYFLOAT', KEYS[1], 'e:' .. segment, ARGV[7])
  if ARGV[8] ~= '' then
    redis.call('HINCRBY', KEYS[1], 'hn:' .. ARGV[8] .. ':' .. segment, 1)
  end
end
if ARGV[4] == '1' and redis.call('SADD', KEYS[2], 'p:' .. offer) == 1 then
  redis.call('HINCRBY', KEYS[1], 'k:' .. segment, 1)
  if ARGV[8] ~= '' then
    redis.call('HINCRBY', KEYS[1], 'hk:' .. ARGV[8] .. ':' .. segment, 1)
  end
end
redis.call('EXPIRE', KEYS[2], ARGV[5])
redis.call('HSET', KEYS[1], 'format', ARGV[6])
return {tonumber(redis.call('HGET', KEYS[1], 'n:' .. segment) or '0'),
        tonumber(redis.call('HGET', KEYS[1], 'k:' .. segment) or '0'),
        redis.call('HGET', KEYS[1], 'e:' .. segment) or '0'}
";

/// `nbo:model:{<namespace>:<rule-id>}`.
pub fn model_key(namespace: &str, rule_id: &str) -> String {
    format!("nbo:model:{{{namespace}:{rule_id}}}")
}

const DAY_MS: i64 = 86_400_000;

/// Models in Redis, next to the customers' state.
pub struct RedisModels {
    redis: RedisStore,
    namespace: String,
}

impl RedisModels {
    /// The models of application `namespace` in `redis` (a handle on the state store's
    /// connection).
    pub fn new(redis: RedisStore, namespace: &str) -> Self {
        Self {
            redis,
            namespace: namespace.to_string(),
        }
    }

    fn tag(&self, rule_id: &str) -> String {
        format!("{}:{rule_id}", self.namespace)
    }
}

/// The models in the hash `key` of rule `rule_id`.
fn parse_hash(
    key: &str,
    rule_id: &str,
    fields: HashMap<String, String>,
) -> Result<Vec<ModelTotals>, StateError> {
    if let Some(format) = fields.get("format") {
        if format != &MODEL_FORMAT.to_string() {
            return Err(StateError::Corrupt(format!(
                "{key}: model format {format}, this release reads format {MODEL_FORMAT}"
            )));
        }
    }
    let mut by_segment: HashMap<String, (Counts, Option<Box<Ranking>>)> = HashMap::new();
    for (field, value) in fields {
        let Some((which, rest)) = field.split_once(':') else {
            continue;
        };
        let bad = || StateError::Corrupt(format!("{key}: {field} = {value:?}"));
        if let ("hn" | "hk", Some((bin, segment))) = (which, rest.split_once(':')) {
            let bin: u8 = bin.parse().map_err(|_| bad())?;
            let n: u64 = value.parse().map_err(|_| bad())?;
            let (_, ranking) = by_segment.entry(segment.to_string()).or_default();
            let ranking = ranking.get_or_insert_with(Box::default);
            let counts = match which {
                "hn" => &mut ranking.trials,
                _ => &mut ranking.positives,
            };
            *counts.get_mut(usize::from(bin)).ok_or_else(bad)? = n;
            continue;
        }
        let (counts, _) = by_segment.entry(rest.to_string()).or_default();
        match which {
            "n" => counts.trials = value.parse().map_err(|_| bad())?,
            "k" => counts.positives = value.parse().map_err(|_| bad())?,
            "e" => counts.expected = value.parse().map_err(|_| bad())?,
            _ => {}
        }
    }
    Ok(by_segment
        .into_iter()
        .map(|(segment, (counts, ranking))| ModelTotals {
            rule_id: rule_id.to_string(),
            segment,
            counts,
            ranking,
        })
        .collect())
}

#[async_trait::async_trait]
impl ModelStore for RedisModels {
    async fn record(&self, observations: &[Observation]) -> Result<Vec<ModelTotals>, StateError> {
        let cmds: Vec<(String, redis::Cmd)> = observations
            .iter()
            .map(|o| {
                let key = model_key(&self.namespace, &o.rule_id);
                let seen = format!("{key}:seen:{}", o.offered_at.div_euclid(DAY_MS));
                let mut cmd = redis::cmd("EVAL");
                cmd.arg(RECORD)
                    .arg(2)
                    .arg(&key)
                    .arg(seen)
                    .arg(&o.offer_id)
                    .arg(&o.segment)
                    .arg(if o.trial { "1" } else { "0" })
                    .arg(if o.positive { "1" } else { "0" })
                    .arg(REPLAY_WINDOW_SECS)
                    .arg(MODEL_FORMAT)
                    .arg(o.configured)
                    .arg(o.score_bin.map_or_else(String::new, |b| b.to_string()));
                (self.tag(&o.rule_id), cmd)
            })
            .collect();
        let answers = self.redis.each(&cmds).await?;
        let mut latest: HashMap<(String, String), Counts> = HashMap::new();
        for (o, answer) in observations.iter().zip(answers) {
            let (trials, positives, expected): (u64, u64, String) = redis::from_redis_value(answer)
                .map_err(|e| StateError::Corrupt(format!("model update answer: {e}")))?;
            let expected = expected.parse().map_err(|_| {
                StateError::Corrupt(format!("model update answer: expected = {expected:?}"))
            })?;
            latest.insert(
                (o.rule_id.clone(), o.segment.clone()),
                Counts {
                    trials,
                    positives,
                    expected,
                },
            );
        }
        Ok(latest
            .into_iter()
            .map(|((rule_id, segment), counts)| ModelTotals {
                rule_id,
                segment,
                counts,
                ranking: None,
            })
            .collect())
    }

    async fn load(&self, rule_ids: &[String]) -> Result<Vec<ModelTotals>, StateError> {
        let cmds: Vec<(String, redis::Cmd)> = rule_ids
            .iter()
            .map(|id| {
                let mut cmd = redis::cmd("HGETALL");
                cmd.arg(model_key(&self.namespace, id));
                (self.tag(id), cmd)
            })
            .collect();
        let answers = self.redis.each(&cmds).await?;
        let mut out = Vec::new();
        for (id, answer) in rule_ids.iter().zip(answers) {
            let key = model_key(&self.namespace, id);
            let fields: HashMap<String, String> = redis::from_redis_value(answer)
                .map_err(|e| StateError::Corrupt(format!("{key}: {e}")))?;
            out.extend(parse_hash(&key, id, fields)?);
        }
        Ok(out)
    }

    async fn record_uplift(&self, tallies: &[Tally]) -> Result<Vec<(String, Groups)>, StateError> {
        // One script per rule and day of count, in the order the tallies came.
        let mut by_day: Vec<((&str, i64), Vec<&Tally>)> = Vec::new();
        for t in tallies {
            let at = (t.rule_id.as_str(), t.counted_at.div_euclid(DAY_MS));
            match by_day.iter_mut().find(|(k, _)| *k == at) {
                Some((_, ts)) => ts.push(t),
                None => by_day.push((at, vec![t])),
            }
        }
        let cmds: Vec<(String, redis::Cmd)> = by_day
            .iter()
            .map(|((rule_id, day), ts)| {
                let key = uplift::uplift_key(&self.namespace, rule_id);
                let mut cmd = redis::cmd("EVAL");
                cmd.arg(uplift::RECORD)
                    .arg(2)
                    .arg(&key)
                    .arg(format!("{key}:seen:{day}"))
                    .arg(REPLAY_WINDOW_SECS)
                    .arg(uplift::UPLIFT_FORMAT);
                for t in ts {
                    cmd.arg(uplift::seen_member(t)).arg(uplift::field(t));
                }
                (self.tag(rule_id), cmd)
            })
            .collect();
        let answers = self.redis.each(&cmds).await?;
        // The last answer of a rule is its newest total (one rule's scripts run in order).
        let mut latest: HashMap<String, Groups> = HashMap::new();
        for (((rule_id, _), _), answer) in by_day.iter().zip(answers) {
            let key = uplift::uplift_key(&self.namespace, rule_id);
            let fields: HashMap<String, String> = redis::from_redis_value(answer)
                .map_err(|e| StateError::Corrupt(format!("{key}: {e}")))?;
            latest.insert(rule_id.to_string(), uplift::parse(&key, &fields)?);
        }
        Ok(latest.into_iter().collect())
    }

    async fn load_uplift(&self, rule_ids: &[String]) -> Result<Vec<(String, Groups)>, StateError> {
        let cmds: Vec<(String, redis::Cmd)> = rule_ids
            .iter()
            .map(|id| {
                let mut cmd = redis::cmd("HGETALL");
                cmd.arg(uplift::uplift_key(&self.namespace, id));
                (self.tag(id), cmd)
            })
            .collect();
        let answers = self.redis.each(&cmds).await?;
        let mut out = Vec::new();
        for (id, answer) in rule_ids.iter().zip(answers) {
            let key = uplift::uplift_key(&self.namespace, id);
            let fields: HashMap<String, String> = redis::from_redis_value(answer)
                .map_err(|e| StateError::Corrupt(format!("{key}: {e}")))?;
            if !fields.is_empty() {
                out.push((id.clone(), uplift::parse(&key, &fields)?));
            }
        }
        Ok(out)
    }
}

/// Models in this process only (the memory state backend, tests, backtests): lost with it.
#[derive(Debug, Default)]
pub struct MemoryModels {
    inner: Mutex<(CountsByModel, HashSet<String>)>,
    uplift: Mutex<uplift::MemoryUplift>,
}

/// Counts, and the ranking where one is kept, by (rule id, segment).
type CountsByModel = HashMap<(String, String), (Counts, Option<Box<Ranking>>)>;

#[async_trait::async_trait]
impl ModelStore for MemoryModels {
    async fn record(&self, observations: &[Observation]) -> Result<Vec<ModelTotals>, StateError> {
        Ok(self.record_now(observations))
    }

    async fn load(&self, rule_ids: &[String]) -> Result<Vec<ModelTotals>, StateError> {
        Ok(self.load_now(rule_ids))
    }

    async fn record_uplift(&self, tallies: &[Tally]) -> Result<Vec<(String, Groups)>, StateError> {
        let mut uplift = self.uplift.lock().unwrap_or_else(|e| e.into_inner());
        Ok(uplift.record(tallies))
    }

    async fn load_uplift(&self, rule_ids: &[String]) -> Result<Vec<(String, Groups)>, StateError> {
        let uplift = self.uplift.lock().unwrap_or_else(|e| e.into_inner());
        Ok(uplift.load(rule_ids))
    }
}

impl MemoryModels {
    /// [`ModelStore::record`], synchronously (for the backtest, which has no runtime to wait on).
    pub fn record_now(&self, observations: &[Observation]) -> Vec<ModelTotals> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (models, seen) = &mut *inner;
        let mut touched = Vec::new();
        for o in observations {
            let key = (o.rule_id.clone(), o.segment.clone());
            let (c, ranking) = models.entry(key.clone()).or_default();
            if o.trial && seen.insert(format!("t:{}:{}", o.rule_id, o.offer_id)) {
                c.trials += 1;
                c.expected += o.configured;
                if let Some(bin) = o.score_bin {
                    ranking.get_or_insert_with(Box::default).trial(bin);
                }
            }
            if o.positive && seen.insert(format!("p:{}:{}", o.rule_id, o.offer_id)) {
                c.positives += 1;
                if let Some(bin) = o.score_bin {
                    ranking.get_or_insert_with(Box::default).positive(bin);
                }
            }
            if !touched.contains(&key) {
                touched.push(key);
            }
        }
        touched
            .into_iter()
            .map(|key| ModelTotals {
                counts: models[&key].0,
                ranking: None,
                rule_id: key.0,
                segment: key.1,
            })
            .collect()
    }

    /// [`ModelStore::load`], synchronously.
    pub fn load_now(&self, rule_ids: &[String]) -> Vec<ModelTotals> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .0
            .iter()
            .filter(|((rule, _), _)| rule_ids.contains(rule))
            .map(|((rule_id, segment), (counts, ranking))| ModelTotals {
                rule_id: rule_id.clone(),
                segment: segment.clone(),
                counts: *counts,
                ranking: ranking.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(offer: &str, positive: bool) -> Observation {
        Observation {
            rule_id: "offer-a".into(),
            segment: "MASS".into(),
            offer_id: offer.into(),
            offered_at: 1_000,
            trial: true,
            configured: 0.25,
            positive,
            score_bin: Some(crate::learning::ranking::bin(0.25)),
        }
    }

    #[test]
    fn each_offer_counts_once_as_a_trial_and_once_as_a_positive() {
        let store = MemoryModels::default();
        store.record_now(&[obs("o1", false), obs("o1", true), obs("o2", false)]);
        let totals = store.record_now(&[obs("o1", true), obs("o2", false)]);
        assert_eq!(
            totals[0].counts,
            Counts {
                trials: 2,
                positives: 1,
                expected: 0.5,
            }
        );
        let loaded = store.load_now(&["offer-a".to_string()]);
        let ranking = loaded[0].ranking.as_ref().expect("a ranked model");
        let bin = usize::from(crate::learning::ranking::bin(0.25));
        assert_eq!((ranking.trials[bin], ranking.positives[bin]), (2, 1));
        assert_eq!(ranking.auc(), Some(0.5));
    }

    #[test]
    fn a_hash_of_another_format_is_refused_with_its_key() {
        let fields = [("format".to_string(), "9".to_string())].into();
        let key = model_key("app", "offer-a");
        let err = parse_hash(&key, "offer-a", fields).unwrap_err().to_string();
        assert!(
            err.contains("nbo:model:{app:offer-a}") && err.contains("format 9"),
            "{err}"
        );
        let fields = [
            ("format".to_string(), "1".to_string()),
            ("n:MASS".to_string(), "10".to_string()),
            ("k:MASS".to_string(), "3".to_string()),
            ("e:MASS".to_string(), "2.5".to_string()),
            ("hn:20:MASS".to_string(), "6".to_string()),
            ("hn:40:MASS".to_string(), "4".to_string()),
            ("hk:40:MASS".to_string(), "3".to_string()),
        ]
        .into();
        let totals = parse_hash(&key, "offer-a", fields).unwrap();
        // Three accepted offers, all scored above the six declined of bin 20 and tied with
        // the one of bin 40: (3 × 6 + 3 × 0.5) / (3 × 7).
        let auc = totals[0].ranking.as_ref().and_then(|r| r.auc()).unwrap();
        assert!((auc - 19.5 / 21.0).abs() < 1e-12, "{auc}");
        assert_eq!(
            totals[0].counts,
            Counts {
                trials: 10,
                positives: 3,
                expected: 2.5,
            }
        );
    }
}
