//! # nbo-stream
//!
//! A real-time customer-event processor for a retail bank: it reads every channel from Kafka, keeps
//! per-customer windowed features, and turns them into next-best offers, risk alerts and an audit
//! of every decision. The contract (topics, fields, keys, CLI) is DESIGN.md.
//!
//! ## Layout: the data path, in order
//!
//! ```text
//!  source    source, pipeline   one consumer group (range assignor); the poll loop routes
//!                               partition p to worker p mod N: per-partition order, bounded
//!                               per-worker queues of batches; rebalances start a new generation;
//!                               per partition group, records in record-timestamp order across
//!                               the input topics (source::align)
//!  decode    codec, registry,   Confluent/plain Avro → event::Event (built-in records typed,
//!            catalog            records of sources declared in `[[source]]` as field values;
//!                               catalog::Catalog, one value per configuration, names every
//!                               record, its topic, schema and fields);
//!                               a record's schema id names its writer schema in the Schema
//!                               Registry (registry::Registry), fetched once per id before its
//!                               batch decodes (codec::fetch) and resolved to the topic's reader
//!                               schema (codec::resolve); bad bytes → dead letters
//!  operator  worker → operator  per customer: replay check, privacy gate, profile,
//!                               features (features::{spec,expr,tiles}), rules, decision,
//!                               over the customer's state (customer::CustomerState: profile,
//!                               tiles, and the contact history, customer::ContactHistory,
//!                               which alone records, prunes and reads offers and alerts made)
//!  state     state              stores customer::CustomerState (keys, encoding, earlier
//!                               formats) in a StateStore: redis::RedisStore |
//!                               memory::MemoryStore; one round trip to load a batch's misses,
//!                               one to write its changes
//!  sinks     sink               offers, alerts, audit, dead letters; offsets stored only after
//!                               the batch's records are acknowledged and its state flushed;
//!                               the producers' settings (sink::config)
//! ```
//!
//! Rules: `rules` is pure (documents, the CEL compiler, the rule book, the history format);
//! `rules_topic` is their Kafka I/O (the watcher that hot-reloads, publishing with its history).
//! At the side: `config` (every section typed, `[schema_registry]` included), `telemetry`,
//! `clock`, `backoff` (the retry steps every dependency shares). `customer` is the domain that
//! `operator`, `rules` and `decision` share and `state` stores; it imports none of them.
//!
//! [`pipeline::run`] wires these stages and owns the shutdown order. `main.rs` and `cli/` (part of
//! the binary, not of this library) parse the command line and call in here.
//!
//! Off the data path: `generator` (synthetic customers, to topics or, through `recorded`, to an
//! Avro or JSON-lines file), `demo` (everything in one process) and `backtest` (a recorded file
//! replayed through the same operator, with a report of what the rules would have decided).
//! `registry::tooling` registers and checks this program's schemas (`schemas register|check`).
//! `learning` holds the statistics of offers that learn (Beta posteriors of propensity, uplift
//! against the control group, the AUC of a model's ranking), which decisioning reads.
//!
//! Beside the stream: `api` answers inbound decisions over HTTP (`nbo-stream api`), reading the
//! customers' state the stream stores and deciding with the same operator
//! (`operator::inbound`, on `InboundRequest` records of `catalog::inbound`).

pub mod api;
pub mod backoff;
pub mod backtest;
pub mod catalog;
pub mod clock;
pub mod codec;
pub mod config;
pub mod console;
pub mod customer;
pub mod decision;
pub mod demo;
pub mod event;
pub mod export;
pub mod features;
pub mod generator;
pub mod learning;
pub mod operator;
pub mod output;
pub mod pipeline;
pub mod recorded;
pub mod registry;
pub mod rules;
pub mod rules_topic;
pub mod sink;
pub mod source;
pub mod state;
pub mod telemetry;
pub mod topics;
pub mod worker;
