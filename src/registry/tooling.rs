//! `nbo-stream schemas register|check`: this program's schemas against a Schema Registry, for a
//! bank's release pipeline.
//!
//! `check` asks the registry whether each local schema may follow the latest version of its
//! subject (BACKWARD unless the subject says otherwise: the local schema can read every record
//! written with that version). `register` runs the same check first and registers nothing
//! unless every schema passes, then registers them all.

use super::{subject_for_topic, Registry, RegistryError};
use crate::codec::schemas;
use crate::config::TopicSettings;
use crate::event::EventKind;
use std::fmt;

/// One schema this program reads or writes, with the subject it belongs under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSchema {
    /// The topic the records travel on.
    pub topic: String,
    /// `<topic>-value`.
    pub subject: String,
    /// Avro record name, e.g. `TransactionEvent`.
    pub record: String,
    /// The schema JSON text (the reader schema of an input, the writer schema of an output).
    pub schema: String,
}

/// The input records' reader schemas and the four output schemas, under the configured topic
/// names, inputs first.
pub fn local_schemas(topics: &TopicSettings) -> Vec<LocalSchema> {
    let inputs = EventKind::ALL
        .iter()
        .zip(topics.inputs())
        .map(|(kind, topic)| (topic, Some(schemas::for_kind(*kind))));
    let outputs = [
        (topics.offers.as_str(), "NextBestOffer"),
        (topics.alerts.as_str(), "RiskAlert"),
        (topics.decisions_audit.as_str(), "DecisionAudit"),
        (topics.dead_letters.as_str(), "DeadLetter"),
    ]
    .map(|(topic, record)| (topic, schemas::by_record(record)));
    inputs
        .chain(outputs)
        .filter_map(|(topic, entry)| {
            let entry = entry?;
            Some(LocalSchema {
                topic: topic.to_string(),
                subject: subject_for_topic(topic),
                record: entry.record.to_string(),
                schema: entry.text.to_string(),
            })
        })
        .collect()
}

/// The reader schemas of the sources declared in `[[source]]`, under their topics' subjects
/// (after [`local_schemas`] in `schemas register|check`).
pub fn declared_schemas(catalog: &crate::catalog::Catalog) -> Vec<LocalSchema> {
    catalog
        .declared()
        .iter()
        .map(|d| LocalSchema {
            topic: d.topic.to_string(),
            subject: subject_for_topic(d.topic),
            record: d.record.to_string(),
            schema: d.schema_text.clone(),
        })
        .collect()
}

/// What the registry says of one local schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The subject does not exist yet: registering starts it at version 1.
    New,
    /// This very schema is the subject's latest version.
    Registered {
        /// Its version.
        version: u32,
        /// Its id.
        id: u32,
    },
    /// The schema may follow the latest version.
    Compatible {
        /// The latest version it was checked against.
        latest: u32,
    },
    /// The schema may not follow the latest version.
    Incompatible {
        /// The latest version it was checked against.
        latest: u32,
        /// The registry's reasons.
        messages: Vec<String>,
    },
}

/// The outcome of `schemas check`: one verdict per local schema, in [`local_schemas`] order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// Each schema and its verdict.
    pub rows: Vec<(LocalSchema, Verdict)>,
}

impl CheckReport {
    /// The subjects whose local schema the registry refuses.
    pub fn incompatible(&self) -> Vec<&str> {
        self.rows
            .iter()
            .filter(|(_, v)| matches!(v, Verdict::Incompatible { .. }))
            .map(|(s, _)| s.subject.as_str())
            .collect()
    }

    /// `Err` naming the refused subjects, if any.
    pub fn refusal(&self) -> Result<(), Incompatible> {
        let subjects: Vec<String> = self.incompatible().into_iter().map(String::from).collect();
        if subjects.is_empty() {
            Ok(())
        } else {
            Err(Incompatible { subjects })
        }
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = subject_width(self.rows.iter().map(|(s, _)| s));
        for (schema, verdict) in &self.rows {
            let subject = &schema.subject;
            match verdict {
                Verdict::New => writeln!(f, "{subject:<width$}  new (not registered yet)")?,
                Verdict::Registered { version, id } => writeln!(
                    f,
                    "{subject:<width$}  registered (version {version}, id {id})"
                )?,
                Verdict::Compatible { latest } => {
                    writeln!(f, "{subject:<width$}  compatible with version {latest}")?
                }
                Verdict::Incompatible { latest, messages } => {
                    writeln!(f, "{subject:<width$}  INCOMPATIBLE with version {latest}")?;
                    for message in messages {
                        writeln!(f, "{:width$}    {message}", "")?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Local schemas the registry refuses; `schemas check` and `schemas register` exit 1 on it.
#[derive(Debug, thiserror::Error)]
#[error("incompatible with the registry's latest version: {}", .subjects.join(", "))]
pub struct Incompatible {
    /// The subjects refused.
    pub subjects: Vec<String>,
}

/// Asks the registry about each schema: already registered, new, or (in)compatible with the
/// subject's latest version.
pub async fn check(
    registry: &Registry,
    schemas: &[LocalSchema],
) -> Result<CheckReport, RegistryError> {
    let mut rows = Vec::with_capacity(schemas.len());
    for schema in schemas {
        let verdict = verdict(registry, schema).await?;
        rows.push((schema.clone(), verdict));
    }
    Ok(CheckReport { rows })
}

async fn verdict(registry: &Registry, schema: &LocalSchema) -> Result<Verdict, RegistryError> {
    let Some(latest) = registry.latest(&schema.subject).await? else {
        return Ok(Verdict::New);
    };
    if let Some(found) = registry.lookup(&schema.subject, &schema.schema).await? {
        if found.version == latest.version {
            return Ok(Verdict::Registered {
                version: found.version,
                id: found.id,
            });
        }
        // Registered once, but the subject has moved on: whether this schema reads what the
        // latest version writes is still the question.
    }
    let answer = registry
        .is_compatible(&schema.subject, &schema.schema)
        .await?;
    Ok(if answer.compatible {
        Verdict::Compatible {
            latest: latest.version,
        }
    } else {
        Verdict::Incompatible {
            latest: latest.version,
            messages: answer.messages,
        }
    })
}

/// One schema as registered: the row `schemas register` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The schema.
    pub schema: LocalSchema,
    /// Its version within the subject.
    pub version: u32,
    /// Its global id.
    pub id: u32,
}

/// The outcome of `schemas register`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterReport {
    /// One row per local schema, in [`local_schemas`] order.
    pub rows: Vec<Registration>,
}

impl fmt::Display for RegisterReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = subject_width(self.rows.iter().map(|r| &r.schema));
        writeln!(
            f,
            "{:<width$}  {:>7}  {:>6}  record",
            "subject", "version", "id"
        )?;
        for row in &self.rows {
            writeln!(
                f,
                "{:<width$}  {:>7}  {:>6}  {}",
                row.schema.subject, row.version, row.id, row.schema.record
            )?;
        }
        Ok(())
    }
}

/// Why `schemas register` registered nothing, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The check refused some schemas (the report says which and why); nothing was registered.
    #[error("nothing was registered: {}", .0.refusal().err().map(|e| e.to_string()).unwrap_or_default())]
    Incompatible(CheckReport),
    /// A registry call failed (rows registered before it are kept by the registry).
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// Checks every schema, then, when all pass, registers each under its subject (an already
/// registered schema keeps its version and id).
pub async fn register(
    registry: &Registry,
    schemas: &[LocalSchema],
) -> Result<RegisterReport, RegisterError> {
    let report = check(registry, schemas).await?;
    if report.refusal().is_err() {
        return Err(RegisterError::Incompatible(report));
    }
    let mut rows = Vec::with_capacity(schemas.len());
    for schema in schemas {
        let id = registry.register(&schema.subject, &schema.schema).await?;
        let found = registry.lookup(&schema.subject, &schema.schema).await?;
        let version = found
            .map(|f| f.version)
            .ok_or_else(|| RegistryError::Unavailable {
                reason: format!(
                    "{}: {} was registered as id {id} but the lookup does not find it",
                    registry.url(),
                    schema.subject
                ),
            })?;
        rows.push(Registration {
            schema: schema.clone(),
            version,
            id,
        });
    }
    Ok(RegisterReport { rows })
}

fn subject_width<'a>(schemas: impl Iterator<Item = &'a LocalSchema>) -> usize {
    schemas.map(|s| s.subject.len()).max().unwrap_or(0).max(7)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_input_and_output_schema_has_its_topics_subject() {
        let topics = TopicSettings::default();
        let local = local_schemas(&topics);
        assert_eq!(local.len(), 16, "twelve inputs and four outputs");
        let find = |record: &str| local.iter().find(|s| s.record == record).unwrap();
        assert_eq!(
            find("TransactionEvent").subject,
            "bank.transactions.v1-value"
        );
        assert_eq!(
            find("ErasureRequest").subject,
            "bank.erasure-requests.v1-value"
        );
        assert_eq!(find("NextBestOffer").subject, "bank.offers.v1-value");
        assert_eq!(find("DeadLetter").subject, "bank.dead-letters.v1-value");
        for schema in &local {
            let parsed = apache_avro::Schema::parse_str(&schema.schema).unwrap();
            assert!(
                parsed.canonical_form().contains(&schema.record),
                "{} holds {}",
                schema.subject,
                schema.record
            );
        }
    }
}
