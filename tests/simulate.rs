//! The simulated customers answer the offers a running pipeline sent: every answer is the one
//! the responder gives that customer's persona for that offer, keyed and stamped as the
//! pipeline expects, and a second run of the simulator goes on where the first stopped.

mod common;

use common::*;
use nbo_stream::codec::Codec;
use nbo_stream::config::StateBackend;
use nbo_stream::event::{Event, EventKind};
use nbo_stream::generator::investigator::Investigators;
use nbo_stream::generator::personas::EventFactory;
use nbo_stream::generator::responder::{Responder, Truth};
use nbo_stream::generator::simulate::{simulate, SimulateOptions};
use nbo_stream::output::NextBestOffer;
use nbo_stream::state::memory::MemoryStore;
use rdkafka::mocking::MockCluster;
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

const EVENTS: u64 = 8_000;
const CUSTOMERS: u32 = 600;
const SEED: u64 = 11;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_customers_answer_the_offers_the_pipeline_sent() {
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let settings = test_settings(&brokers, StateBackend::Memory);
    for topic in settings.topics.all() {
        cluster.create_topic(topic, 4, 1).unwrap();
    }
    let running = Running::start(&settings, Arc::new(MemoryStore::new()));
    tokio::task::block_in_place(|| generate(&settings, CUSTOMERS, EVENTS, SEED, 0.0));
    assert!(running.processed(EVENTS, Duration::from_secs(120)).await);
    running.stop().await;
    let offers: Vec<NextBestOffer> = outputs(&brokers, &settings.topics.offers, "NextBestOffer", 1);
    assert!(
        offers.len() > 20,
        "the stream makes offers: {}",
        offers.len()
    );

    let options = SimulateOptions {
        customers: CUSTOMERS,
        seed: SEED,
        responder: Responder::new(Truth::default(), SEED),
        delay: Duration::from_secs(600),
        framing: settings.codec.input_framing,
        offer_framing: settings.codec.output_framing,
        group_id: unique("simulator"),
        idle_exit: Some(Duration::from_secs(4)),
        delivery_receipts: false,
        investigators: None,
        close_after: Duration::from_secs(3_600),
    };
    let codec = Codec::new(&settings.codec_options()).unwrap();
    let client = nbo_stream::source::client_config(&settings.kafka);
    let stop = AtomicBool::new(false);
    let summary = tokio::task::block_in_place(|| {
        simulate(&client, &settings.topics, &codec, &options, &stop)
    })
    .unwrap();
    assert_eq!(summary.offers as usize, offers.len(), "{summary}");
    assert_eq!((summary.unknown_customers, summary.undecodable), (0, 0));
    let answered: u64 = summary.answers.values().sum();
    assert_eq!(answered + summary.ignored, summary.offers);
    assert!(answered > 0 && summary.ignored > 0, "{summary}");

    // Each answer is the responder's for that customer's persona and that offer.
    let personas: HashMap<String, _> = EventFactory::new(CUSTOMERS, SEED, 0)
        .customers()
        .iter()
        .map(|c| (c.id.to_string(), c.persona))
        .collect();
    let responder = Responder::new(Truth::default(), SEED);
    let by_id: HashMap<&str, &NextBestOffer> =
        offers.iter().map(|o| (o.offer_id.as_str(), o)).collect();
    let records = read_topic(
        &brokers,
        &settings.topics.offer_responses,
        answered as usize,
        Duration::from_secs(30),
    );
    assert_eq!(records.len() as u64, answered);
    for (key, payload) in &records {
        let Ok(Event::OfferResponse(r)) = codec.decode(
            EventKind::OfferResponse,
            key.as_deref(),
            Some(payload),
            i64::MAX,
        ) else {
            panic!("an offer response decodes");
        };
        let offer = by_id[r.offer_id.as_str()];
        assert_eq!(r.customer_id.as_str(), offer.customer_id);
        assert_eq!(key.as_deref(), Some(offer.customer_id.as_bytes()));
        assert_eq!(r.event_id.as_str(), format!("response:{}", offer.offer_id));
        assert!(r.event_time > offer.decided_at && r.event_time <= offer.decided_at + 600_000);
        let persona = personas[&offer.customer_id];
        assert_eq!(
            Some(r.response),
            responder.answer(persona, &offer.offer_id, offer.product_category)
        );
    }

    // Each accepted offer opened its product, as the CRM would record it.
    let accepted = summary.answers.get("ACCEPTED").copied().unwrap_or(0);
    assert!(accepted > 0, "{summary}");
    assert_eq!(summary.opened, accepted, "{summary}");
    let opened = read_topic(
        &brokers,
        &settings.topics.product_openings,
        accepted as usize,
        Duration::from_secs(30),
    );
    assert_eq!(opened.len() as u64, accepted);
    for (key, payload) in &opened {
        let Ok(Event::ProductOpened(p)) = codec.decode(
            EventKind::ProductOpened,
            key.as_deref(),
            Some(payload),
            i64::MAX,
        ) else {
            panic!("a product opened decodes");
        };
        let offer = by_id[p.offer_id.as_deref().expect("the offer it answered")];
        assert_eq!(p.customer_id.as_str(), offer.customer_id);
        assert_eq!(p.product_category, offer.product_category);
        let persona = personas[&offer.customer_id];
        assert_eq!(
            responder.answer(persona, &offer.offer_id, offer.product_category),
            Some(nbo_stream::event::OfferResponseKind::Accepted)
        );
    }

    // A second run in the same group has nothing left to answer.
    let again = tokio::task::block_in_place(|| {
        simulate(&client, &settings.topics, &codec, &options, &stop)
    })
    .unwrap();
    assert_eq!(again.offers, 0, "{again}");
}

/// Two alert rules, one loose and one strict, whose true precisions the simulator is told.
const ALERT_RULES: [(&str, &str, f64); 2] = [
    ("alert-sim-loose", "event.amount_minor >= 2000", 0.2),
    ("alert-sim-strict", "event.amount_minor >= 5000", 0.7),
];

/// The simulated investigators close every alert the pipeline raised, and the stream's count of
/// each rule's closures (`nbo_alert_outcomes_total{rule,version,label}`) gives its precision:
/// within 0.03 of the truth the simulator was told, with at least 500 closed alerts per rule.
/// The draws are seeded by the seed and each alert's id, so the run is the same every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_rules_measured_precision_is_its_true_precision_once_500_alerts_are_closed() {
    const EVENTS: u64 = 24_000;
    const CUSTOMERS: u32 = 1_500;
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let mut settings = test_settings(&brokers, StateBackend::Memory);
    for topic in settings.topics.all() {
        cluster.create_topic(topic, 4, 1).unwrap();
    }
    let rules = tempfile::tempdir().unwrap();
    for (id, condition, _) in ALERT_RULES {
        let doc = format!(
            "id = \"{id}\"\nversion = 1\ndescription = \"card payments over a bound\"\n\
             triggers = [\"TransactionEvent\"]\ncondition = \"{condition}\"\n\
             [alert]\nkind = \"FRAUD\"\nseverity = \"LOW\"\ncooldown = \"1s\"\n"
        );
        std::fs::write(rules.path().join(format!("{id}.toml")), doc).unwrap();
    }
    settings.rules.path = Some(rules.path().to_path_buf());
    let running = Running::start(&settings, Arc::new(MemoryStore::new()));
    tokio::task::block_in_place(|| generate(&settings, CUSTOMERS, EVENTS, SEED, 0.0));
    assert!(running.processed(EVENTS, Duration::from_secs(180)).await);

    let truth: String = ALERT_RULES
        .iter()
        .map(|(id, _, p)| format!("{id} = {p}\n"))
        .collect();
    let investigators =
        Investigators::from_toml(&format!("[alert_precision]\n{truth}"), SEED).unwrap();
    let options = SimulateOptions {
        customers: CUSTOMERS,
        seed: SEED,
        responder: Responder::new(Truth::default(), SEED),
        delay: Duration::from_secs(600),
        framing: settings.codec.input_framing,
        offer_framing: settings.codec.output_framing,
        group_id: unique("simulator"),
        idle_exit: Some(Duration::from_secs(4)),
        delivery_receipts: false,
        investigators: Some(investigators),
        close_after: Duration::from_secs(3_600),
    };
    let codec = Codec::new(&settings.codec_options()).unwrap();
    let client = nbo_stream::source::client_config(&settings.kafka);
    let stop = AtomicBool::new(false);
    let summary = tokio::task::block_in_place(|| {
        simulate(&client, &settings.topics, &codec, &options, &stop)
    })
    .unwrap();
    assert_eq!(summary.undecodable, 0);
    let closed: u64 = summary.closed.values().sum();
    assert_eq!(closed, summary.alerts, "{summary}");
    let answered: u64 = summary.answers.values().sum::<u64>() + summary.opened;
    assert!(
        running
            .processed(EVENTS + closed + answered, Duration::from_secs(120))
            .await,
        "the stream takes in every closure"
    );
    running.stop().await;

    let m = nbo_stream::telemetry::metrics();
    let mut counted = 0;
    for (id, _, truth) in ALERT_RULES {
        let n = |label: &str| m.alert_outcomes.with_label_values(&[id, "1", label]).get();
        let (confirmed, false_positives) = (n("CONFIRMED_RISK"), n("FALSE_POSITIVE"));
        let rule_closed = confirmed + false_positives;
        counted += rule_closed;
        assert!(rule_closed >= 500, "{id}: {rule_closed} closed");
        let measured = confirmed as f64 / rule_closed as f64;
        eprintln!("{id}: {confirmed} of {rule_closed} confirmed, {measured:.4} (truth {truth})");
        assert!(
            (measured - truth).abs() <= 0.03,
            "{id}: measured {measured:.4} ({confirmed} of {rule_closed}), truth {truth}"
        );
    }
    assert_eq!(counted, closed, "every closure counted once, for its rule");
}
