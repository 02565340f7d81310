//! In-process state store (dashmap): the demo's and the tests' store, behind the same trait as Redis.
//! Nothing survives the process.

use super::{CustomerKey, StateError, StateStore, StateWrite};
use dashmap::DashMap;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
struct Entry {
    state: Vec<u8>,
    features: Vec<(String, String)>,
}

/// State kept in a concurrent map.
#[derive(Debug, Default)]
pub struct MemoryStore {
    entries: DashMap<CustomerKey, Entry>,
    round_trips: AtomicU64,
    /// The learned models beside the state, lost with it.
    models: std::sync::Arc<super::models::MemoryModels>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of customers stored.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[async_trait::async_trait]
impl StateStore for MemoryStore {
    async fn load(&self, keys: &[CustomerKey]) -> Result<Vec<Option<Vec<u8>>>, StateError> {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        Ok(keys
            .iter()
            .map(|k| self.entries.get(k).map(|e| e.state.clone()))
            .collect())
    }

    async fn store(&self, writes: &[StateWrite]) -> Result<(), StateError> {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        for w in writes {
            let mut entry = self.entries.entry(w.key.clone()).or_default();
            if w.replace || w.erased {
                entry.features.clear();
            }
            if w.erased {
                entry.state = w.state.clone();
                continue;
            }
            entry
                .features
                .retain(|(n, _)| !w.removed.iter().any(|r| **r == **n) && n != "_updated_at");
            for (name, value) in &w.features {
                match entry.features.iter_mut().find(|(n, _)| **n == **name) {
                    Some((_, v)) => *v = value.to_string(),
                    None => entry.features.push((name.to_string(), value.to_string())),
                }
            }
            entry
                .features
                .push(("_updated_at".into(), w.updated_at.to_string()));
            entry.state = w.state.clone();
        }
        Ok(())
    }

    async fn feature_hash(&self, key: &CustomerKey) -> Result<Vec<(String, String)>, StateError> {
        Ok(self
            .entries
            .get(key)
            .map(|e| e.features.clone())
            .unwrap_or_default())
    }

    fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    /// The models of every namespace: a memory store serves one application.
    fn models(&self, _namespace: &str) -> Option<std::sync::Arc<dyn super::models::ModelStore>> {
        Some(self.models.clone())
    }
}
