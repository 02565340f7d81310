//! Hot reload through the broker: a rule published to the rules topic takes effect in a running
//! pipeline within 2 s, without a restart; a broken document is rejected (audited) and the version
//! in force keeps deciding; a shadow version runs as a challenger beside the version in force
//! (which keeps deciding) until it is promoted.

mod common;

use common::*;
use nbo_stream::codec::{Codec, Framing};
use nbo_stream::config::StateBackend;
use nbo_stream::event::*;
use nbo_stream::generator::encode_event;
use nbo_stream::output::{DecisionAudit, NextBestOffer};
use nbo_stream::rules_topic::publish::{self, Publication};
use nbo_stream::state::memory::MemoryStore;
use nbo_stream::telemetry::metrics;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RULE: &str = r#"
id = "offer-electronics-insurance"
version = 1
description = "Gadget insurance after a partner reports an electronics purchase"
triggers = ["PartnerEvent"]
condition = "event.category == 'ELECTRONICS' && event.amount_minor >= 20000"
[offer]
offer_code = "GADGET-01"
product = "INSURANCE"
value = 80.0
channels = ["EMAIL"]
cooldown = "30d"
propensity = { intercept = 0.0 }
"#;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

struct Input {
    producer: FutureProducer,
    codec: Codec,
    settings: nbo_stream::config::Settings,
}

impl Input {
    async fn send(&self, event: Event) {
        let topic = self.settings.topics.inputs()[event.kind().index()];
        let payload = encode_event(&self.codec, &event, Framing::Confluent).unwrap();
        let record = FutureRecord::to(topic)
            .key(event.customer_id())
            .payload(&payload);
        self.producer
            .send(record, Duration::from_secs(10))
            .await
            .unwrap();
    }

    async fn raw_rule(&self, key: &str, value: &str) -> i64 {
        let record = FutureRecord::to(&self.settings.topics.rules)
            .key(key)
            .payload(value);
        self.producer
            .send(record, Duration::from_secs(10))
            .await
            .unwrap()
            .offset
    }

    async fn profile(&self, id: &str) {
        self.send(Event::Profile(CustomerProfile {
            customer_id: id.into(),
            updated_at: now_ms() - 60_000,
            lifecycle_stage: LifecycleStage::Mature,
            segment: "MASS".into(),
            credit_score: Some(700),
            consent_marketing: true,
            consent_profiling: true,
            contact_channels: vec![ContactChannel::Email],
        }))
        .await;
    }

    async fn purchase(&self, id: &str, n: u32) {
        self.send(Event::Partner(PartnerEvent {
            event_id: format!("P-{id}-{n}").into(),
            customer_id: id.into(),
            event_time: now_ms(),
            partner: "GadgetShop".into(),
            category: "ELECTRONICS".into(),
            amount_minor: 45_000,
            currency: "EUR".into(),
        }))
        .await;
    }
}

/// Waits until the pipeline runs the rule set at `version`; returns how long that took.
fn destination(settings: &nbo_stream::config::Settings) -> publish::Destination<'_> {
    publish::Destination {
        rules: &settings.topics.rules,
        history: &settings.topics.rules_history,
    }
}

fn who(comment: &str) -> nbo_stream::rules::history::Provenance {
    nbo_stream::rules::history::Provenance::new(
        "pat",
        comment,
        nbo_stream::rules::history::Action::Publish,
    )
    .unwrap()
}

async fn installed(version: i64, since: Instant) -> Duration {
    let ok = wait_for(Duration::from_secs(10), || {
        metrics().ruleset_version.get() == version
    })
    .await;
    assert!(
        ok,
        "rule set {version} not installed (at {})",
        metrics().ruleset_version.get()
    );
    since.elapsed()
}

fn audits(brokers: &str, topic: &str, min: usize) -> Vec<DecisionAudit> {
    outputs(brokers, topic, "DecisionAudit", min)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_rules_take_effect_without_restart_and_broken_ones_change_nothing() {
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let settings = test_settings(&brokers, StateBackend::Memory);
    for topic in settings.topics.all() {
        let partitions = if topic == settings.topics.rules { 1 } else { 2 };
        cluster.create_topic(topic, partitions, 1).unwrap();
    }
    let health = nbo_stream::telemetry::http::Health::default();
    let progress = Arc::new(nbo_stream::worker::Progress::default());
    let deps = nbo_stream::pipeline::Dependencies {
        store: Arc::new(MemoryStore::new()),
        health: health.clone(),
        progress: progress.clone(),
    };
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let run_settings = settings.clone();
    let pipeline =
        tokio::spawn(async move { nbo_stream::pipeline::run(&run_settings, deps, stop_rx).await });
    assert!(wait_for(Duration::from_secs(30), || health.is_ready()).await);
    let client = nbo_stream::source::client_config(&settings.kafka);
    let input = Input {
        producer: client.create().unwrap(),
        codec: Codec::with_defaults().unwrap(),
        settings: settings.clone(),
    };
    for id in ["C1", "C2", "C3", "C4", "C5"] {
        input.profile(id).await;
    }
    // Profiles (with consent) are in before any purchase: topics are not ordered among themselves.
    let p = progress.clone();
    assert!(
        wait_for(Duration::from_secs(30), || {
            p.events.load(std::sync::atomic::Ordering::Relaxed) >= 3
        })
        .await
    );

    // 1. Publish a new rule the way `rules publish` does: checked, then sent.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gadget.toml"), RULE).unwrap();
    let features = settings.features.load().unwrap();
    let checked = publish::check(dir.path(), &features).unwrap();
    let items: Vec<Publication> = checked
        .into_iter()
        .map(|c| Publication::Document(Box::new(c)))
        .collect();
    let sent = publish::publish(
        &client,
        destination(&settings),
        &items,
        &who("first version"),
    )
    .await
    .unwrap();
    let took = installed(sent[0].2 + 1, Instant::now()).await;
    eprintln!("hot reload: installed {took:?} after the publish was acknowledged");
    assert!(took < Duration::from_secs(2), "hot reload took {took:?}");
    input.purchase("C1", 1).await;
    let offers: Vec<NextBestOffer> = outputs(&brokers, &settings.topics.offers, "NextBestOffer", 1);
    assert_eq!(offers.len(), 1);
    assert_eq!(
        (
            offers[0].rule_id.as_str(),
            offers[0].rule_version,
            offers[0].customer_id.as_str()
        ),
        ("offer-electronics-insurance", 1, "C1")
    );

    // 2. A broken version is rejected and audited; version 1 keeps deciding.
    let broken = RULE
        .replace("version = 1", "version = 2")
        .replace("&& event.amount_minor >= 20000", "&& event.amount_minor >=");
    let offset = input.raw_rule("offer-electronics-insurance", &broken).await;
    let mut rejected = Vec::new();
    wait_for(Duration::from_secs(15), || {
        rejected = audits(&brokers, &settings.topics.decisions_audit, 1)
            .into_iter()
            .filter(|a| a.outcome == DecisionOutcome::RuleRejected)
            .collect();
        !rejected.is_empty()
    })
    .await;
    assert_eq!(rejected.len(), 1, "one rejection audited");
    assert!(
        rejected[0].reasons[0].contains("condition, line"),
        "{:?}",
        rejected[0].reasons
    );
    assert_eq!(
        rejected[0].trigger_event_id,
        format!("rules-topic:0:{offset}")
    );
    assert_eq!(
        metrics().ruleset_version.get(),
        sent[0].2 + 1,
        "set unchanged"
    );
    input.purchase("C2", 1).await;
    let offers: Vec<NextBestOffer> = outputs(&brokers, &settings.topics.offers, "NextBestOffer", 2);
    let c2 = offers
        .iter()
        .find(|o| o.customer_id == "C2")
        .expect("offer to C2");
    assert_eq!(c2.rule_version, 1, "the old version still runs");

    // 3. A shadow version under the rule id is refused: it would switch version 1 off.
    let shadow = RULE.replace("version = 1", "version = 3\nstate = \"shadow\"");
    let refused = input.raw_rule("offer-electronics-insurance", &shadow).await;
    wait_for(Duration::from_secs(15), || {
        audits(&brokers, &settings.topics.decisions_audit, 1)
            .iter()
            .any(|a| {
                a.outcome == DecisionOutcome::RuleRejected
                    && a.trigger_event_id == format!("rules-topic:0:{refused}")
            })
    })
    .await;

    // 4. Published as a challenger, it runs beside version 1: version 1 still offers, and
    //    version 3 writes SHADOW audits of its own, with what it would have decided.
    let since = Instant::now();
    let offset = input
        .raw_rule("offer-electronics-insurance@shadow", &shadow)
        .await;
    let took = installed(offset + 1, since).await;
    eprintln!("hot reload: challenger installed {took:?} after the publish was acknowledged");
    assert!(took < Duration::from_secs(2), "hot reload took {took:?}");
    input.purchase("C3", 1).await;
    let mut shadow_audit = None;
    wait_for(Duration::from_secs(15), || {
        shadow_audit = audits(&brokers, &settings.topics.decisions_audit, 1)
            .into_iter()
            .find(|a| {
                a.customer_id == "C3" && a.outcome == DecisionOutcome::Shadow && a.rule_version == 3
            });
        shadow_audit.is_some()
    })
    .await;
    let shadow_audit = shadow_audit.expect("a SHADOW audit of version 3 for C3");
    assert!(shadow_audit.shadow_outcome.is_some(), "{shadow_audit:?}");
    let offers: Vec<NextBestOffer> = outputs(&brokers, &settings.topics.offers, "NextBestOffer", 3);
    let c3: Vec<_> = offers.iter().filter(|o| o.customer_id == "C3").collect();
    assert_eq!(c3.len(), 1, "{offers:?}");
    assert_eq!(c3[0].rule_version, 1, "the champion keeps offering");

    // 5. Promoted (its text published as active under the rule id, the challenger key
    //    emptied), version 3 offers.
    let promoted = RULE.replace("version = 1", "version = 3");
    let doc = nbo_stream::rules::document::RuleDocument::parse_guessing(&promoted).unwrap();
    let items = [
        Publication::Document(Box::new(publish::Checked {
            doc,
            text: promoted.clone(),
            path: "promotion".into(),
        })),
        Publication::Delete("offer-electronics-insurance@shadow".into()),
    ];
    let since = Instant::now();
    let sent = publish::publish(&client, destination(&settings), &items, &who("v3 wins"))
        .await
        .unwrap();
    // The tombstone after a promotion changes nothing: the promotion retired the challenger.
    installed(sent[0].2 + 1, since).await;
    input.purchase("C4", 1).await;
    let offers: Vec<NextBestOffer> = outputs(&brokers, &settings.topics.offers, "NextBestOffer", 4);
    let c4 = offers
        .iter()
        .find(|o| o.customer_id == "C4")
        .expect("offer to C4");
    assert_eq!(c4.rule_version, 3, "the promoted version offers");

    // 6. The history holds every change sent through `publish` with who and why, and a
    //    rollback publishes version 1's text again as version 4.
    let consumer = nbo_stream::source::rules_consumer_config(&settings.kafka)
        .create()
        .unwrap();
    let entries = publish::read_history(
        &consumer,
        &settings.topics.rules_history,
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let seen: Vec<_> = entries
        .iter()
        .map(|e| (e.version, e.author.as_str(), e.comment.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (1, "pat", "first version"),
            (3, "pat", "v3 wins"),
            (0, "pat", "v3 wins")
        ],
        "{entries:?}"
    );
    assert_eq!(entries[0].text, RULE, "the text as written");
    let book = nbo_stream::rules_topic::watch::read_book(
        &consumer,
        &settings.topics.rules,
        nbo_stream::rules::book::RuleBook::new(Arc::new(settings.features.load().unwrap()), &[])
            .unwrap(),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let (doc, text) = nbo_stream::rules::history::rollback(
        &entries,
        &[],
        &book,
        "offer-electronics-insurance",
        1,
    )
    .unwrap();
    assert_eq!(doc.version, 4);
    let since = Instant::now();
    let item = Publication::Document(Box::new(publish::Checked {
        doc,
        text,
        path: "rollback".into(),
    }));
    let sent = publish::publish(&client, destination(&settings), &[item], &who("back to v1"))
        .await
        .unwrap();
    installed(sent[0].2 + 1, since).await;
    input.purchase("C5", 1).await;
    let offers: Vec<NextBestOffer> = outputs(&brokers, &settings.topics.offers, "NextBestOffer", 5);
    let c5 = offers
        .iter()
        .find(|o| o.customer_id == "C5")
        .expect("offer to C5");
    assert_eq!(
        c5.rule_version, 4,
        "version 1's text, published again as version 4"
    );

    stop.send(true).unwrap();
    pipeline.await.unwrap().expect("pipeline stopped cleanly");
}
