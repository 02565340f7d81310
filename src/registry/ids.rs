//! The registry as the decode stage and the producers use it at run time: writer schemas by id
//! for [`crate::codec::fetch`], and the ids this program frames its own records with.

use super::tooling::LocalSchema;
use super::{Registry, RegistryError};
use std::collections::HashMap;

#[async_trait::async_trait]
impl crate::codec::fetch::WriterSchemas for Registry {
    /// Only an id the registry does not know (404 with Confluent's code) is an answer about the
    /// record; every other failure — unreachable, 5xx, TLS, a refused login, a wrong base URL —
    /// is about this instance or the registry, so the batch waits rather than dead-letters.
    async fn schema(&self, id: u32) -> Result<Option<String>, String> {
        match self.schema_by_id(id).await {
            Ok(schema) => Ok(Some(schema)),
            Err(RegistryError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// The registry ids of `schemas` (record name → id): each looked up under its subject and, when
/// the subject does not hold it yet, registered (as Confluent's serializers do with
/// `auto.register.schemas`). An id is never hard-coded: the same schema text gets the same id
/// every time, on every instance.
pub async fn ids_of(
    registry: &Registry,
    schemas: &[LocalSchema],
) -> Result<HashMap<String, u32>, RegistryError> {
    let mut ids = HashMap::with_capacity(schemas.len());
    for s in schemas {
        let id = match registry.lookup(&s.subject, &s.schema).await? {
            Some(found) => found.id,
            None => registry.register(&s.subject, &s.schema).await?,
        };
        ids.insert(s.record.clone(), id);
    }
    Ok(ids)
}

/// Which of this program's schemas: the input records' or its own outputs'.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The twelve input records (what `generate`, the API and the case systems write).
    Inputs,
    /// Offers, alerts, audits and dead letters (what `run` writes).
    Outputs,
}

/// The registry ids of one side's schemas under `topics`' subjects (see [`ids_of`]).
pub async fn ids_for(
    registry: &Registry,
    topics: &crate::config::TopicSettings,
    side: Side,
) -> Result<HashMap<String, u32>, RegistryError> {
    let is_input = |record: &str| {
        crate::event::EventKind::ALL
            .iter()
            .any(|k| k.record_name() == record)
    };
    let schemas: Vec<LocalSchema> = super::tooling::local_schemas(topics)
        .into_iter()
        .filter(|s| is_input(&s.record) == (side == Side::Inputs))
        .collect();
    ids_of(registry, &schemas).await
}
