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
//!
//! Over plain TCP to a standalone Redis, loads and writes go over the store's own connections
//! (`state::direct`), written as RESP into one buffer (`state::resp`): the same commands, without
//! building a `redis::Cmd` for each or a value for each answer. Everything else, and TLS, Unix
//! sockets and Cluster, goes through redis-rs.

use super::commands;
use super::direct::Direct;
use super::number_text::NumberText;
use super::resp::{Commands, PipelineCommands, Reply, Resp};
use super::{CustomerKey, StateError, StateStore, StateWrite};
use crate::config::RedisSettings;
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use super::commands::TRANSACTION_CUSTOMERS;

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// State in Redis or Redis Cluster.
pub struct RedisStore {
    conn: Conn,
    /// The store's own connections, for loads and writes (standalone Redis over plain TCP).
    direct: Option<Arc<Direct>>,
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
        let (conn, direct) = if settings.cluster {
            let client = redis::cluster::ClusterClient::new(vec![info]).map_err(unavailable)?;
            let conn = client.get_async_connection().await.map_err(unavailable)?;
            (Conn::Cluster(conn), None)
        } else {
            let direct = Direct::for_info(&info).map(Arc::new);
            let client = redis::Client::open(info).map_err(unavailable)?;
            let conn = ConnectionManager::new(client).await.map_err(unavailable)?;
            (Conn::Single(conn), direct)
        };
        let store = Self {
            conn,
            direct,
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

    /// One call over one of the store's own connections: `build` writes the commands, `each`
    /// sees their answers in order. The connection is kept for the next call only if the call
    /// went through within `redis.timeout`.
    async fn direct_call(
        &self,
        direct: &Direct,
        build: impl FnOnce(&mut Resp),
        each: impl FnMut(usize, Reply<'_>) -> Result<(), StateError>,
    ) -> Result<(), StateError> {
        let call = async {
            let mut c = direct.take().await?;
            build(&mut c.out);
            c.call(each).await.map(|()| c)
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(c)) => {
                direct.give_back(c);
                Ok(())
            }
            Ok(Err(e)) => {
                direct.forget_idle();
                Err(e)
            }
            Err(_) => {
                direct.forget_idle();
                Err(StateError::Unavailable(format!(
                    "no answer within {:?}",
                    self.timeout
                )))
            }
        }
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
            direct: self.direct.clone(),
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
        if let Some(direct) = &self.direct {
            self.round_trips.fetch_add(1, Ordering::Relaxed);
            let mut out = Vec::with_capacity(keys.len());
            let build = |resp: &mut Resp| {
                let mut key_text = NumberText::default();
                for key in keys {
                    let key = key_text.key("nbo:state:", key);
                    resp.command(2, 3 + key.len());
                    resp.arg(b"GET");
                    resp.arg(key);
                }
            };
            self.direct_call(direct, build, |_, reply| {
                out.push(match reply {
                    Reply::Bulk(state) => Some(state.to_vec()),
                    Reply::Nil => None,
                    other => return Err(refused("GET", &other)),
                });
                Ok(())
            })
            .await?;
            return Ok(out);
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
        if let Some(direct) = &self.direct {
            self.round_trips.fetch_add(1, Ordering::Relaxed);
            // Every answer of a write is a status or a count, inside MULTI/EXEC; an error (or an
            // aborted transaction) fails the call, which is retried whole.
            let each = |_, reply: Reply<'_>| match reply {
                Reply::Done => Ok(()),
                other => Err(refused("a customer's write", &other)),
            };
            return self
                .direct_call(direct, |out| commands::transactions(out, writes), each)
                .await;
        }
        match &self.conn {
            Conn::Single(_) => {
                let pipes: Vec<redis::Pipeline> = writes
                    .chunks(TRANSACTION_CUSTOMERS)
                    .map(|chunk| {
                        // Three commands a customer, and MULTI and EXEC.
                        let mut pipe = redis::Pipeline::with_capacity(3 * chunk.len() + 2);
                        pipe.atomic();
                        let mut out = PipelineCommands::new(&mut pipe);
                        for w in chunk {
                            commands::customer_write(&mut out, w);
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
                    commands::customer_write(&mut PipelineCommands::new(pipe), w);
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

/// The error for an answer a call does not take (an error from Redis, most likely).
fn refused(what: &str, reply: &Reply<'_>) -> StateError {
    StateError::Unavailable(match reply {
        Reply::Error(e) => format!("Redis refused {what}: {}", String::from_utf8_lossy(e)),
        Reply::Nil => format!("Redis answered {what} with nil (an aborted transaction)"),
        Reply::Bulk(b) => format!("Redis answered {what} with {} bytes", b.len()),
        Reply::Done => format!("Redis answered {what} with a status"),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn slot_follows_the_cluster_spec() {
        // Reference values from the Redis Cluster specification's CRC16 (XMODEM).
        let key = super::CustomerKey("123456789".into());
        assert_eq!(super::slot(&key), 0x31C3);
    }
}
