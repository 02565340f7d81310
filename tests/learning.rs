//! Offers that learn, end to end on Redis: a running pipeline learns from the responses to the
//! offers it sent, keeps what it learned across a restart (the first offers after it are ranked
//! by the learned propensity), and counts each offer once however often its responses are
//! replayed. And what the offers caused: the treated and control customers and the products they
//! opened, counted in Redis once each.

mod common;

use common::console::{produce_consenting_profile, produce_input, produce_payment};
use common::*;
use nbo_stream::codec::{Codec, Framing};
use nbo_stream::config::{Settings, StateBackend};
use nbo_stream::event::{OfferResponse, OfferResponseKind, ProductCategory, ProductOpened};
use nbo_stream::learning::model::{Counts, Observation};
use nbo_stream::learning::ranking;
use nbo_stream::output::NextBestOffer;
use nbo_stream::state::redis::RedisStore;
use nbo_stream::state::StateStore;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::sync::Arc;
use std::time::Duration;

/// One offer for any card payment of a customer who consents: configured propensity 0.5 (an
/// intercept of 0), worth 10 responses as the prior.
const RULE: &str = r#"id = "offer-learn"
version = 1
description = "learns from its responses"
triggers = ["TransactionEvent"]
condition = "event.amount_minor > 0"
[offer]
offer_code = "LEARN-1"
product = "SAVINGS"
value = 10.0
channels = ["EMAIL"]
cooldown = "30d"
propensity = { intercept = 0.0, evidence = 10 }
"#;

/// Writes responses to offers with one producer (a producer per record would take longer than
/// the test itself).
fn respond(settings: &Settings, answers: &[(&NextBestOffer, OfferResponseKind, u32)]) {
    let producer: BaseProducer = nbo_stream::source::client_config(&settings.kafka)
        .create()
        .unwrap();
    let codec = Codec::with_defaults().unwrap();
    for (offer, kind, n) in answers {
        let r = OfferResponse {
            event_id: format!("{}:{}:{n}", kind.as_str(), offer.offer_id).into(),
            customer_id: offer.customer_id.as_str().into(),
            event_time: offer.decided_at + 60_000,
            offer_id: offer.offer_id.as_str().into(),
            response: *kind,
        };
        let payload = codec
            .encode_framed("OfferResponse", &r, Framing::Confluent)
            .unwrap();
        let record = BaseRecord::to(&settings.topics.offer_responses)
            .key(offer.customer_id.as_str())
            .payload(&payload);
        producer.send(record).map_err(|(e, _)| e).unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
}

/// Customers `ids` (their profiles first, so that each payment finds its customer's consent)
/// each make a card payment; waits until the pipeline has read them after `before` records.
async fn customers_pay(
    settings: &Settings,
    running: &Running,
    ids: std::ops::Range<u32>,
    before: u64,
) {
    let customer = |i: u32| format!("L{i:03}");
    for i in ids.clone() {
        produce_consenting_profile(settings, &customer(i)).await;
    }
    let n = u64::from(ids.end - ids.start);
    assert!(running.processed(before + n, Duration::from_secs(60)).await);
    for i in ids {
        produce_payment(settings, &customer(i), 5_000).await;
    }
    assert!(
        running
            .processed(before + 2 * n, Duration::from_secs(60))
            .await
    );
}

/// A mock cluster with every topic, settings for a pipeline on Redis with [`RULE`] and a control
/// group of `control_percent`, the rules' folder (kept while the test runs) and the store.
async fn on_redis(
    control_percent: u8,
) -> (
    MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    Settings,
    tempfile::TempDir,
    Arc<RedisStore>,
) {
    let cluster = MockCluster::new(1).unwrap();
    let mut settings = test_settings(&cluster.bootstrap_servers(), StateBackend::Redis);
    settings.redis.url = redis_url();
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(rules.path().join("offer-learn.toml"), RULE).unwrap();
    settings.rules.path = Some(rules.path().to_path_buf());
    settings.operator.control_group_percent = control_percent;
    for topic in settings.topics.all() {
        cluster.create_topic(topic, 2, 1).unwrap();
    }
    let store = Arc::new(RedisStore::connect(&settings.redis).await.unwrap());
    (cluster, settings, rules, store)
}

async fn model(store: &RedisStore, settings: &Settings) -> Vec<(String, String)> {
    let key = format!("nbo:model:{{{}:offer-learn}}", settings.kafka.group_id);
    let mut fields: Vec<(String, String)> =
        store.raw(redis::cmd("HGETALL").arg(&key)).await.unwrap();
    fields.sort();
    fields
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_learns_from_responses_keeps_it_across_a_restart_and_counts_each_offer_once() {
    // Every customer is offered (no control group), so the counts below are exact.
    let (cluster, settings, _rules, store) = on_redis(0).await;
    let brokers = cluster.bootstrap_servers();

    // 40 customers get an offer; each confirms its delivery twice, and every fourth accepts,
    // twice too (a channel's retries): 40 trials, 10 positives.
    let running = Running::start(&settings, store.clone());
    customers_pay(&settings, &running, 0..40, 0).await;
    let offers: Vec<NextBestOffer> =
        outputs(&brokers, &settings.topics.offers, "NextBestOffer", 40);
    assert_eq!(offers.len(), 40);
    assert!(offers
        .iter()
        .all(|o| o.explored || o.propensity == Some(0.5)));
    let mut answers = Vec::new();
    for (i, offer) in offers.iter().enumerate() {
        for n in 0..2 {
            answers.push((offer, OfferResponseKind::Delivered, n));
            if i % 4 == 0 {
                answers.push((offer, OfferResponseKind::Accepted, n));
            }
        }
    }
    respond(&settings, &answers);
    assert!(
        running
            .processed(80 + 80 + 20, Duration::from_secs(60))
            .await
    );
    running.stop().await;
    assert_eq!(
        model(&store, &settings).await,
        [
            ("e:".to_string(), "20".to_string()),
            ("format".to_string(), "1".to_string()),
            ("k:".to_string(), "10".to_string()),
            ("n:".to_string(), "40".to_string()),
        ]
    );

    // After a restart the first offers are ranked by what was learned before it:
    // (0.5·10 + 10) / (10 + 40) = 0.3. The responses, replayed whole, count nothing again.
    let running = Running::start(&settings, store.clone());
    let replayed: Vec<_> = offers
        .iter()
        .map(|o| (o, OfferResponseKind::Delivered, 0))
        .collect();
    respond(&settings, &replayed);
    assert!(running.processed(40, Duration::from_secs(60)).await);
    customers_pay(&settings, &running, 40..60, 40).await;
    running.stop().await;
    let all: Vec<NextBestOffer> = outputs(&brokers, &settings.topics.offers, "NextBestOffer", 60);
    let after: Vec<&NextBestOffer> = all
        .iter()
        .filter(|o| o.customer_id.as_str() >= "L040")
        .collect();
    assert_eq!(after.len(), 20);
    let mean: Vec<&&NextBestOffer> = after.iter().filter(|o| !o.explored).collect();
    assert!(mean.len() >= 15, "at most a few of 20 explore");
    for o in mean {
        assert!((o.propensity.unwrap() - 0.3).abs() < 1e-12, "{o:?}");
        assert!((o.score - 3.0).abs() < 1e-9);
    }
    let fields = model(&store, &settings).await;
    assert!(
        fields.contains(&("n:".to_string(), "40".to_string())),
        "{fields:?}"
    );
    assert!(
        fields.contains(&("k:".to_string(), "10".to_string())),
        "{fields:?}"
    );
}

/// The store's side of "never twice": an observation replayed before the customer's marks were
/// stored (a crash between the two writes of a checkpoint) is counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_counts_a_replayed_observation_once() {
    let mut settings = test_settings("unused:9092", StateBackend::Redis);
    settings.redis.url = redis_url();
    let store = RedisStore::connect(&settings.redis).await.unwrap();
    let models = store.models(&settings.kafka.group_id).unwrap();
    let seen = |offer: &str, configured, trial, positive| Observation {
        rule_id: "offer-replayed".into(),
        segment: "MASS".into(),
        offer_id: offer.into(),
        offered_at: 1_800_000_000_000,
        trial,
        configured,
        positive,
        score_bin: Some(ranking::bin(configured)),
    };
    for _ in 0..2 {
        models
            .record(&[seen("o1", 0.25, true, false)])
            .await
            .unwrap();
    }
    for _ in 0..3 {
        models
            .record(&[seen("o1", 0.25, false, true)])
            .await
            .unwrap();
    }
    // A second offer, scored lower and declined, replayed too.
    for _ in 0..2 {
        models
            .record(&[seen("o2", 0.125, true, false)])
            .await
            .unwrap();
    }
    let loaded = models.load(&["offer-replayed".into()]).await.unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(
        (loaded[0].segment.as_str(), loaded[0].counts),
        (
            "MASS",
            Counts {
                trials: 2,
                positives: 1,
                expected: 0.375,
            }
        )
    );
    // Each offer counted once in its score's bin: the accepted one ranked above the other.
    let ranked = loaded[0].ranking.as_ref().expect("the model's ranking");
    let (high, low) = (ranking::bin(0.25), ranking::bin(0.125));
    assert_eq!(
        (
            ranked.trials[usize::from(high)],
            ranked.positives[usize::from(high)]
        ),
        (1, 1)
    );
    assert_eq!(ranked.trials[usize::from(low)], 1);
    assert_eq!(ranked.auc(), Some(1.0));
}

/// The treated and control customers of `offer-learn` and their conversions, as Redis holds them.
async fn uplift(store: &RedisStore, settings: &Settings) -> Vec<(String, String)> {
    let key = nbo_stream::state::uplift::uplift_key(&settings.kafka.group_id, "offer-learn");
    let mut fields: Vec<(String, String)> =
        store.raw(redis::cmd("HGETALL").arg(&key)).await.unwrap();
    fields.sort();
    fields
}

/// Customer `id` opens a product of family `product` now.
async fn opens(settings: &Settings, id: &str, n: u32, product: ProductCategory) {
    let opened = ProductOpened {
        event_id: format!("OPEN-{id}-{n}").into(),
        customer_id: id.into(),
        event_time: nbo_stream::clock::now_ms(),
        product_category: product,
        account_id: format!("A-{id}-{n}").into(),
        channel: "BRANCH".into(),
        offer_id: None,
    };
    let topic = &settings.topics.product_openings;
    produce_input(settings, topic, "ProductOpened", id, &opened).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_counts_treated_and_control_customers_and_their_conversions_once() {
    let (cluster, settings, _rules, store) = on_redis(50).await;
    let brokers = cluster.bootstrap_servers();
    let control = (0..40)
        .filter(|i| {
            nbo_stream::decision::in_control_group(&format!("L{i:03}"), "offer-learn", 50, None)
        })
        .count();
    assert!(control > 5 && control < 35, "{control}");
    let treated = 40 - control;

    // 40 customers pay: the treated get the offer, the control group's are held out. Then
    // every one of them opens a savings account, one of them twice, and one a loan too.
    let running = Running::start(&settings, store.clone());
    customers_pay(&settings, &running, 0..40, 0).await;
    let offers: Vec<NextBestOffer> =
        outputs(&brokers, &settings.topics.offers, "NextBestOffer", treated);
    assert_eq!(offers.len(), treated);
    for i in 0..40 {
        opens(&settings, &format!("L{i:03}"), 0, ProductCategory::Savings).await;
    }
    opens(&settings, "L000", 1, ProductCategory::Savings).await;
    opens(&settings, "L001", 2, ProductCategory::Loan).await;
    assert!(running.processed(80 + 42, Duration::from_secs(60)).await);
    running.stop().await;
    let expected = [
        ("control:k".to_string(), control.to_string()),
        ("control:n".to_string(), control.to_string()),
        ("format".to_string(), "1".to_string()),
        ("treated:k".to_string(), treated.to_string()),
        ("treated:n".to_string(), treated.to_string()),
    ];
    assert_eq!(uplift(&store, &settings).await, expected);

    // After a restart, a second opening of the same family converts nothing more.
    let running = Running::start(&settings, store.clone());
    for i in 0..10 {
        opens(&settings, &format!("L{i:03}"), 3, ProductCategory::Savings).await;
    }
    assert!(running.processed(10, Duration::from_secs(60)).await);
    running.stop().await;
    assert_eq!(uplift(&store, &settings).await, expected);
}

/// The store's side of "once" for uplift: a tally replayed before the customer's marks were
/// stored is counted once, and the totals read back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_counts_a_replayed_uplift_tally_once() {
    use nbo_stream::learning::uplift::{Group, Tally};
    let mut settings = test_settings("unused:9092", StateBackend::Redis);
    settings.redis.url = redis_url();
    let store = RedisStore::connect(&settings.redis).await.unwrap();
    let models = store.models(&settings.kafka.group_id).unwrap();
    let tally = |id: &str, group, converted| Tally {
        exposure_id: id.into(),
        exposed_at: 1_800_000_000_000,
        counted_at: 1_800_000_000_000,
        rule_id: "offer-replayed".into(),
        group,
        converted,
    };
    for _ in 0..2 {
        models
            .record_uplift(&[
                tally("e1", Group::Treated, false),
                tally("e2", Group::Control, false),
                tally("e1", Group::Treated, true),
            ])
            .await
            .unwrap();
    }
    let loaded = models
        .load_uplift(&["offer-replayed".into(), "offer-never-seen".into()])
        .await
        .unwrap();
    assert_eq!(loaded.len(), 1);
    let (rule, g) = &loaded[0];
    assert_eq!(rule, "offer-replayed");
    assert_eq!((g.treated.customers, g.treated.converted), (1, 1));
    assert_eq!((g.control.customers, g.control.converted), (1, 0));
}
