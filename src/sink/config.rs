//! The producers' client settings: **where delivery's broker-side guarantees are set**
//! (idempotence, acks, transactions and their timeouts).

use crate::config::KafkaSettings;
use crate::source::{apply_options, client_config};
use rdkafka::config::ClientConfig;

/// Producer configuration: idempotent (unless turned off for brokers without it), acks=all.
pub fn producer_config(k: &KafkaSettings) -> ClientConfig {
    let mut c = client_config(k);
    c.set(
        "enable.idempotence",
        if k.idempotence { "true" } else { "false" },
    )
    .set("acks", "all")
    .set("compression.type", &k.compression)
    .set("linger.ms", "5")
    .set("message.timeout.ms", "60000");
    apply_options(&mut c, k);
    c
}

/// Producer configuration of worker `index` in exactly-once mode: transactional (which implies
/// idempotence), with its own transactional id.
pub fn transactional_producer_config(k: &KafkaSettings, index: usize) -> ClientConfig {
    let mut c = producer_config(k);
    let txn_ms = k.transaction_timeout.as_millis();
    c.set("transactional.id", k.transactional_id(index))
        .set("transaction.timeout.ms", txn_ms.to_string())
        // librdkafka requires a record's delivery timeout to fit in its transaction's.
        .set("message.timeout.ms", txn_ms.min(60_000).to_string());
    apply_options(&mut c, k);
    c
}
