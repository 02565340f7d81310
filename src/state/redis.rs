//! Redis state store: one pipeline to load a batch's customers, one round trip to write them.
//!
//! Standalone Redis: the writes go in MULTI/EXEC transactions of [`TRANSACTION_CUSTOMERS`] customers each,
//! all sent at once over the multiplexed connection (one round trip). Redis runs a transaction
//! without serving anyone else, so one transaction for a whole checkpoint (thousands of
//! customers) held every other client (the API's reads, the console) for tens of milliseconds;
//! between two transactions others get their turn. If one transaction fails the call fails and
//! is retried whole, while the others already sent still land (the same data again). Atomicity is per customer, which is what delivery
//! needs: each customer's state carries the offsets it has applied, so after a crash between
//! two chunks the customers written skip the replay and the others take it. Redis Cluster: a
//! pipeline cannot cross slots, and both of a customer's keys carry the same hash tag
//! `{<customer-key>}`, so the batch is split into one MULTI/EXEC pipeline per hash slot, all sent
//! at once (one round of parallel requests, multiplexed over the node connections), and
//! reassembled in order.

use super::{CustomerKey, StateError, StateStore, StateWrite};
use crate::config::RedisSettings;
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Customers per MULTI/EXEC of a standalone write: a transaction of 32 customers (about 100
/// commands) keeps Redis from others for a few hundred microseconds at most.
pub const TRANSACTION_CUSTOMERS: usize = 32;

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// State in Redis or Redis Cluster.
pub struct RedisStore {
    conn: Conn,
    timeout: Duration,
    round_trips: AtomicU64,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("timeout", &self.timeout)
            .finish()
    }
}

fn unavailable(e: impl std::fmt::Display) -> StateError {
    StateError::Unavailable(e.to_string())
}

fn connection_info(settings: &RedisSettings) -> Result<redis::ConnectionInfo, StateError> {
    use redis::IntoConnectionInfo;
    let mut info = settings
        .url
        .as_str()
        .into_connection_info()
        .map_err(unavailable)?;
    let mut redis_info = info.redis_settings().clone();
    if let Some(user) = &settings.username {
        redis_info = redis_info.set_username(user.clone());
    }
    if let Some(password) = &settings.password {
        redis_info = redis_info.set_password(password.expose());
    }
    info = info.set_redis_settings(redis_info);
    Ok(info)
}

impl RedisStore {
    /// Connects (and checks the connection with PING).
    pub async fn connect(settings: &RedisSettings) -> Result<Self, StateError> {
        let info = connection_info(settings)?;
        let conn = if settings.cluster {
            let client = redis::cluster::ClusterClient::new(vec![info]).map_err(unavailable)?;
            Conn::Cluster(client.get_async_connection().await.map_err(unavailable)?)
        } else {
            let client = redis::Client::open(info).map_err(unavailable)?;
            Conn::Single(ConnectionManager::new(client).await.map_err(unavailable)?)
        };
        let store = Self {
            conn,
            timeout: settings.timeout,
            round_trips: AtomicU64::new(0),
        };
        let mut ping = redis::pipe();
        ping.cmd("PING");
        let _: (String,) = store.query(&ping).await?;
        Ok(store)
    }

    async fn query<T: redis::FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, StateError> {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        self.send(pipe).await
    }

    /// Sends one pipeline (not counted: callers count the round trip they make).
    async fn send<T: redis::FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, StateError> {
        let fut = async {
            match self.conn.clone() {
                Conn::Single(mut c) => pipe.query_async::<T>(&mut c).await,
                Conn::Cluster(mut c) => pipe.query_async::<T>(&mut c).await,
            }
        };
        tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| StateError::Unavailable(format!("no answer within {:?}", self.timeout)))?
            .map_err(unavailable)
    }

    /// The commands of one customer's write, added to `pipe`. Public for the allocation bench
    /// (`benches/allocations.rs`).
    ///
    /// Each command is built at its exact size (`redis::Cmd::with_capacity`), and feature values
    /// are formatted into a stack buffer: a write costs two allocations per command and none per
    /// value. The values' text is `FeatureValue`'s `Display`, as other systems read it. A delta
    /// is two commands (HSET, SETEX); a whole rewrite adds DEL before (unless the hash is
    /// known not to exist) and EXPIRE after.
    pub fn write_commands(pipe: &mut redis::Pipeline, w: &StateWrite) {
        let mut key_text = NumberText::default();
        let features_key = key_text.key("nbo:features:", &w.key);
        if (w.replace && !w.absent) || w.erased {
            pipe.del(features_key).ignore();
        }
        if w.erased {
            pipe.del(w.key.pending_contacts_key()).ignore();
            pipe.add_command(set_ex(&w.key, &w.state, w.ttl_secs))
                .ignore();
            return;
        }
        if !w.removed.is_empty() {
            let names: Vec<&str> = w.removed.iter().map(|n| &**n).collect();
            pipe.hdel(features_key, names).ignore();
        }
        let (mut number, mut stamp) = (NumberText::default(), NumberText::default());
        let updated_at = stamp.integer(w.updated_at);
        let args = 2 + 2 * (w.features.len() + 1);
        // Numbers are sized at their usual text's length (a longer one grows the buffer once),
        // so that no value is formatted twice.
        let size = "HSET".len()
            + features_key.len()
            + w.features
                .iter()
                .map(|(n, v)| n.len() + value_len(v))
                .sum::<usize>()
            + "_updated_at".len()
            + updated_at.len();
        let mut hset = redis::Cmd::with_capacity(args, size);
        hset.arg("HSET").arg(features_key);
        for (name, value) in &w.features {
            hset.arg(&**name);
            match value {
                crate::features::FeatureValue::Num(x) => hset.arg(number.float(*x)),
                crate::features::FeatureValue::Text(t) => hset.arg(t.as_str()),
            };
        }
        hset.arg("_updated_at").arg(updated_at);
        pipe.add_command(hset).ignore();
        // The hash's TTL is set when it is written whole (a customer's first write after a load,
        // then every `worker::FULL_REWRITE`), not with every delta: the TTL (the longest window
        // plus a margin, days) outlives the minutes between two full rewrites many times over.
        // A hash that expired between them is rebuilt whole, TTL included, at the next one.
        if w.replace {
            let ttl = number.integer(w.ttl_secs as i64);
            let mut expire = redis::Cmd::with_capacity(3, 6 + features_key.len() + ttl.len());
            expire.arg("EXPIRE").arg(features_key).arg(ttl);
            pipe.add_command(expire).ignore();
        }
        pipe.add_command(set_ex(&w.key, &w.state, w.ttl_secs))
            .ignore();
    }

    /// Commands on keys of other kinds than a customer's (the learned models'), each with the
    /// hash tag of its keys, in one round trip: one pipeline standalone, one per hash slot (in
    /// parallel) on a cluster. Not atomic across commands: each must be whole on its own (a
    /// script). The answers come back in the commands' order.
    pub async fn each(
        &self,
        cmds: &[(String, redis::Cmd)],
    ) -> Result<Vec<redis::Value>, StateError> {
        if cmds.is_empty() {
            return Ok(Vec::new());
        }
        if let Conn::Single(_) = self.conn {
            let mut pipe = redis::pipe();
            for (_, cmd) in cmds {
                pipe.add_command(cmd.clone());
            }
            return self.query(&pipe).await;
        }
        let mut by_slot: std::collections::BTreeMap<u16, (redis::Pipeline, Vec<usize>)> =
            Default::default();
        for (i, (tag, cmd)) in cmds.iter().enumerate() {
            let (pipe, at) = by_slot
                .entry(slot_of(tag))
                .or_insert_with(|| (redis::pipe(), Vec::new()));
            pipe.add_command(cmd.clone());
            at.push(i);
        }
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let answers = futures::future::try_join_all(
            by_slot
                .values()
                .map(|(p, _)| self.send::<Vec<redis::Value>>(p)),
        )
        .await?;
        let mut out = vec![redis::Value::Nil; cmds.len()];
        for ((_, at), values) in by_slot.values().zip(answers) {
            for (i, v) in at.iter().zip(values) {
                out[*i] = v;
            }
        }
        Ok(out)
    }

    /// Another handle on the same connection (its round trips counted apart).
    pub fn handle(&self) -> Self {
        Self {
            conn: self.conn.clone(),
            timeout: self.timeout,
            round_trips: AtomicU64::new(0),
        }
    }

    /// A raw command, for tests and `features show`.
    pub async fn raw<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StateError> {
        let fut = async {
            match self.conn.clone() {
                Conn::Single(mut c) => c.req_packed_command(cmd).await,
                Conn::Cluster(mut c) => c.req_packed_command(cmd).await,
            }
        };
        let value = tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| StateError::Unavailable("timeout".into()))?
            .map_err(unavailable)?;
        redis::from_redis_value(value).map_err(unavailable)
    }
}

#[async_trait::async_trait]
impl StateStore for RedisStore {
    async fn load(&self, keys: &[CustomerKey]) -> Result<Vec<Option<Vec<u8>>>, StateError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        if let Conn::Single(_) = self.conn {
            let mut pipe = redis::pipe();
            for key in keys {
                pipe.get(key.state_key());
            }
            return self.query(&pipe).await;
        }
        // Cluster: one pipeline per slot, in parallel; answers put back in the keys' order.
        let mut by_slot: std::collections::BTreeMap<u16, (redis::Pipeline, Vec<usize>)> =
            Default::default();
        for (i, key) in keys.iter().enumerate() {
            let (pipe, at) = by_slot
                .entry(slot(key))
                .or_insert_with(|| (redis::pipe(), Vec::new()));
            pipe.get(key.state_key());
            at.push(i);
        }
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let answers = futures::future::try_join_all(
            by_slot
                .values()
                .map(|(p, _)| self.send::<Vec<Option<Vec<u8>>>>(p)),
        )
        .await?;
        let mut out = vec![None; keys.len()];
        for ((_, at), values) in by_slot.values().zip(answers) {
            for (i, v) in at.iter().zip(values) {
                out[*i] = v;
            }
        }
        Ok(out)
    }

    async fn store(&self, writes: &[StateWrite]) -> Result<(), StateError> {
        if writes.is_empty() {
            return Ok(());
        }
        match &self.conn {
            Conn::Single(_) => {
                let pipes: Vec<redis::Pipeline> = writes
                    .chunks(TRANSACTION_CUSTOMERS)
                    .map(|chunk| {
                        // Three commands a customer, and MULTI and EXEC.
                        let mut pipe = redis::Pipeline::with_capacity(3 * chunk.len() + 2);
                        pipe.atomic();
                        for w in chunk {
                            Self::write_commands(&mut pipe, w);
                        }
                        pipe
                    })
                    .collect();
                self.round_trips.fetch_add(1, Ordering::Relaxed);
                let requests = pipes.iter().map(|p| self.send::<()>(p));
                futures::future::try_join_all(requests).await.map(|_| ())
            }
            Conn::Cluster(_) => {
                let mut by_slot: std::collections::BTreeMap<u16, redis::Pipeline> =
                    Default::default();
                for w in writes {
                    let pipe = by_slot.entry(slot(&w.key)).or_insert_with(|| {
                        let mut p = redis::pipe();
                        p.atomic();
                        p
                    });
                    Self::write_commands(pipe, w);
                }
                self.round_trips.fetch_add(1, Ordering::Relaxed);
                let requests = by_slot.values().map(|p| self.send::<()>(p));
                futures::future::try_join_all(requests).await.map(|_| ())
            }
        }
    }

    async fn feature_hash(&self, key: &CustomerKey) -> Result<Vec<(String, String)>, StateError> {
        let mut pipe = redis::pipe();
        pipe.hgetall(key.features_key());
        let (map,): (std::collections::BTreeMap<String, String>,) = self.query(&pipe).await?;
        Ok(map.into_iter().collect())
    }

    fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    fn models(&self, namespace: &str) -> Option<std::sync::Arc<dyn super::models::ModelStore>> {
        Some(std::sync::Arc::new(super::models::RedisModels::new(
            self.handle(),
            namespace,
        )))
    }
}

/// The Redis Cluster hash slot of a customer's keys: CRC16 (XMODEM) of the hash tag, mod 16384.
fn slot(key: &CustomerKey) -> u16 {
    slot_of(&key.0)
}

/// The hash slot of the keys whose hash tag is `tag`.
fn slot_of(tag: &str) -> u16 {
    let crc = tag.bytes().fold(0u16, |mut crc, b| {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
        crc
    });
    crc % 16384
}

/// `SETEX nbo:state:{<customer-key>} ttl value`, built at its exact size.
fn set_ex(customer: &CustomerKey, value: &[u8], ttl_secs: u64) -> redis::Cmd {
    let (mut number, mut key_text) = (NumberText::default(), NumberText::default());
    let ttl = number.integer(ttl_secs as i64);
    let key = key_text.key("nbo:state:", customer);
    // SETEX rather than SET … EX: the same effect in one argument and six bytes fewer.
    let mut cmd = redis::Cmd::with_capacity(4, 5 + key.len() + ttl.len() + value.len());
    cmd.arg("SETEX").arg(key).arg(ttl).arg(value);
    cmd
}

/// The usual length of a feature value's text: a number's is at most 24 characters but for
/// magnitudes past 1e17 or below 1e-7.
fn value_len(value: &crate::features::FeatureValue) -> usize {
    match value {
        crate::features::FeatureValue::Num(_) => 24,
        crate::features::FeatureValue::Text(t) => t.len(),
    }
}

/// A number's or a key's text, written into a stack buffer (no allocation): floats as `f64`'s
/// `Display` writes them (never in exponent form: up to 309 digits for the largest, 326
/// characters for the smallest subnormal), integers in decimal, keys as `CustomerKey` names them
/// (`<prefix>{<customer-key>}`).
struct NumberText {
    buf: [u8; 400],
    spill: String,
}

impl Default for NumberText {
    fn default() -> Self {
        Self {
            buf: [0; 400],
            spill: String::new(),
        }
    }
}

impl NumberText {
    fn float(&mut self, x: f64) -> &[u8] {
        self.write(format_args!("{x}"))
    }

    fn integer(&mut self, n: i64) -> &[u8] {
        self.write(format_args!("{n}"))
    }

    fn key(&mut self, prefix: &str, customer: &CustomerKey) -> &[u8] {
        self.write(format_args!("{prefix}{{{}}}", customer.0))
    }

    fn write(&mut self, args: std::fmt::Arguments<'_>) -> &[u8] {
        use std::io::Write;
        let mut cursor = std::io::Cursor::new(&mut self.buf[..]);
        if cursor.write_fmt(args).is_ok() {
            let len = cursor.position() as usize;
            return &self.buf[..len];
        }
        // Longer than any number's text: written on the heap rather than cut.
        self.spill = args.to_string();
        self.spill.as_bytes()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn slot_follows_the_cluster_spec() {
        // Reference values from the Redis Cluster specification's CRC16 (XMODEM).
        let key = super::CustomerKey("123456789".into());
        assert_eq!(super::slot(&key), 0x31C3);
    }

    /// The commands of a write carry each value as its `Display` text, whatever its size.
    #[test]
    fn a_write_is_the_hash_fields_as_text_the_ttl_and_the_state() {
        use crate::features::FeatureValue;
        let values = [1e300, 5e-324, -0.0, 0.1 + 0.2, 12.5, f64::MAX, -1234567.875];
        let mut features: Vec<(std::sync::Arc<str>, FeatureValue)> = values
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("f{i}").into(), FeatureValue::Num(*v)))
            .collect();
        features.push(("segment".into(), FeatureValue::Text("MASS".into())));
        let w = super::StateWrite {
            key: super::CustomerKey("abc".into()),
            state: vec![7, 0, 1],
            features: features.clone(),
            removed: vec![],
            replace: true,
            absent: false,
            erased: false,
            updated_at: 1_800_000_000_123,
            ttl_secs: 86_400,
        };
        let mut pipe = redis::pipe();
        super::RedisStore::write_commands(&mut pipe, &w);

        let mut expected = redis::pipe();
        expected.add_command(redis::cmd("DEL").arg(w.key.features_key()).clone());
        let mut hset = redis::cmd("HSET");
        hset.arg(w.key.features_key());
        for (name, value) in &features {
            hset.arg(&**name).arg(value.to_string());
        }
        hset.arg("_updated_at").arg("1800000000123");
        expected.add_command(hset);
        expected.add_command(
            redis::cmd("EXPIRE")
                .arg(w.key.features_key())
                .arg(86_400)
                .clone(),
        );
        expected.add_command(
            redis::cmd("SETEX")
                .arg(w.key.state_key())
                .arg(86_400)
                .arg(&[7u8, 0, 1][..])
                .clone(),
        );
        assert_eq!(
            String::from_utf8_lossy(&pipe.get_packed_pipeline()),
            String::from_utf8_lossy(&expected.get_packed_pipeline())
        );

        // The first write of a customer with no stored state: its hash does not exist, so it
        // is not deleted; the rest is the same.
        let first = super::StateWrite {
            absent: true,
            ..w.clone()
        };
        let mut pipe = redis::pipe();
        super::RedisStore::write_commands(&mut pipe, &first);
        let mut without_del = redis::pipe();
        for cmd in expected.cmd_iter().skip(1) {
            without_del.add_command(cmd.clone());
        }
        assert_eq!(
            String::from_utf8_lossy(&pipe.get_packed_pipeline()),
            String::from_utf8_lossy(&without_del.get_packed_pipeline())
        );

        // A delta renews no TTL: the hash's fields and the state, nothing else.
        let delta = super::StateWrite {
            replace: false,
            absent: false,
            features: features[..1].to_vec(),
            ..w
        };
        let mut pipe = redis::pipe();
        super::RedisStore::write_commands(&mut pipe, &delta);
        let packed = String::from_utf8_lossy(&pipe.get_packed_pipeline()).to_string();
        assert!(
            packed.contains("HSET") && packed.contains("SETEX\r\n"),
            "{packed}"
        );
        assert!(
            !packed.contains("EXPIRE") && !packed.contains("DEL"),
            "{packed}"
        );
    }
}
