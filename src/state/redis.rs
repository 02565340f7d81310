//! Redis state store. Standalone Redis: each batch is one pipeline (loads) and one MULTI/EXEC
//! pipeline (writes). Redis Cluster: loads are one cluster pipeline (routed per node); writes go as
//! one MULTI per customer, since both of a customer's keys share a slot but a batch spans many.

use super::{CustomerKey, StateError, StateStore, StateWrite};
use crate::config::RedisSettings;
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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

    fn write_commands(pipe: &mut redis::Pipeline, w: &StateWrite) {
        let features_key = w.key.features_key();
        if w.replace {
            pipe.del(&features_key).ignore();
        }
        if !w.removed.is_empty() {
            let names: Vec<&str> = w.removed.iter().map(|n| &**n).collect();
            pipe.hdel(&features_key, names).ignore();
        }
        let mut fields: Vec<(&str, String)> = w
            .features
            .iter()
            .map(|(n, v)| (&**n, v.to_string()))
            .collect();
        fields.push(("_updated_at", w.updated_at.to_string()));
        pipe.hset_multiple(&features_key, &fields).ignore();
        pipe.expire(&features_key, w.ttl_secs as i64).ignore();
        pipe.set_ex(w.key.state_key(), w.state.as_slice(), w.ttl_secs)
            .ignore();
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
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.get(key.state_key());
        }
        self.query(&pipe).await
    }

    async fn store(&self, writes: &[StateWrite]) -> Result<(), StateError> {
        if writes.is_empty() {
            return Ok(());
        }
        match &self.conn {
            Conn::Single(_) => {
                let mut pipe = redis::pipe();
                pipe.atomic();
                for w in writes {
                    Self::write_commands(&mut pipe, w);
                }
                self.query::<()>(&pipe).await
            }
            Conn::Cluster(_) => {
                for w in writes {
                    let mut pipe = redis::pipe();
                    pipe.atomic();
                    Self::write_commands(&mut pipe, w);
                    self.query::<()>(&pipe).await?;
                }
                Ok(())
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
}
