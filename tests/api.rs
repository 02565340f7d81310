//! Inbound decisions end to end: a pipeline on Redis takes in customers' profiles and payments,
//! then `nbo-stream api` (started in process, over HTTP) answers channels from the state the
//! stream stored: the offer a feature qualifies the customer for, or why there is none (no
//! consent, the control group, no eligible rule), each audited on the audit topic through the
//! outbox in Redis. Bad requests get their 4xx and record nothing.

mod common;

use common::api::{ask, decision, start_api};
use common::console::{produce_consenting_profile, produce_input, produce_payment};
use common::*;
use nbo_stream::api::request::DecisionAnswer;
use nbo_stream::config::{Settings, StateBackend};
use nbo_stream::event::{ContactChannel, CustomerProfile, DecisionOutcome, LifecycleStage};
use nbo_stream::output::DecisionAudit;
use nbo_stream::state::redis::RedisStore;
use rdkafka::mocking::MockCluster;
use std::sync::Arc;
use std::time::Duration;

/// The app's offer: a credit card for a customer who paid by credit card in the last 30 days.
const APP_RULE: &str = r#"id = "offer-app-card"
version = 1
description = "in the app, a card upgrade for credit-card users"
triggers = ["InboundRequest"]
condition = "event.channel == 'APP' && features.credit_card_txn_count_30d >= 1.0"
[offer]
offer_code = "APP-CARD-1"
product = "CREDIT_CARD"
value = 50.0
channels = ["PUSH"]
cooldown = "1d"
propensity = { intercept = -1.0, weights = { credit_card_txn_count_30d = 0.5 } }
"#;

/// The call centre's offer: a loan, for anyone who calls.
const CALL_RULE: &str = r#"id = "offer-call-loan"
version = 1
description = "on a call, a personal loan"
triggers = ["InboundRequest"]
condition = "event.channel == 'CALL_CENTRE'"
[offer]
offer_code = "CALL-LOAN-1"
product = "LOAN"
value = 80.0
channels = ["CALL"]
cooldown = "1d"
propensity = { intercept = -2.0 }
"#;

const CONTROL_PERCENT: u8 = 20;

fn in_control(customer: &str, rule: &str) -> bool {
    nbo_stream::decision::in_control_group(customer, rule, CONTROL_PERCENT, None)
}

/// A customer id of the form `<prefix><n>` for which `want` holds.
fn customer_where(prefix: &str, want: impl Fn(&str) -> bool) -> String {
    (0..10_000)
        .map(|n| format!("{prefix}{n}"))
        .find(|c| want(c))
        .expect("a customer id")
}

async fn profile_without_marketing(settings: &Settings, customer: &str) {
    let profile = CustomerProfile {
        customer_id: customer.into(),
        updated_at: nbo_stream::clock::now_ms() - 60_000,
        lifecycle_stage: LifecycleStage::Growing,
        segment: "MASS".into(),
        credit_score: Some(700),
        consent_marketing: false,
        consent_profiling: true,
        contact_channels: vec![ContactChannel::Email],
    };
    let topic = &settings.topics.customer_profile;
    produce_input(settings, topic, "CustomerProfile", customer, &profile).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_from_the_streams_state_and_audits_every_answer() {
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let mut settings = test_settings(&brokers, StateBackend::Redis);
    settings.redis.url = redis_url();
    settings.operator.control_group_percent = CONTROL_PERCENT;
    // The answer's propensity is checked exactly: no decision explores (a draw from the
    // posterior, 5% of decisions by default).
    settings.operator.learning.exploration = 0.0;
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(rules.path().join("app.toml"), APP_RULE).unwrap();
    std::fs::write(rules.path().join("call.toml"), CALL_RULE).unwrap();
    settings.rules.path = Some(rules.path().to_path_buf());
    for topic in settings.topics.all() {
        cluster.create_topic(topic, 2, 1).unwrap();
    }
    let store = Arc::new(RedisStore::connect(&settings.redis).await.unwrap());

    // Four customers: a card user, one without marketing consent, one with nothing the rules
    // read, and one in the call centre offer's control group.
    let card_user = customer_where("U", |c| !in_control(c, "offer-app-card"));
    let no_marketing = customer_where("N", |c| !in_control(c, "offer-app-card"));
    let quiet = customer_where("Q", |c| !in_control(c, "offer-app-card"));
    let held_out = customer_where("H", |c| in_control(c, "offer-call-loan"));
    let running = Running::start(&settings, store.clone());
    for c in [&card_user, &quiet, &held_out] {
        produce_consenting_profile(&settings, c).await;
    }
    profile_without_marketing(&settings, &no_marketing).await;
    assert!(running.processed(4, Duration::from_secs(60)).await);
    produce_payment(&settings, &card_user, 5_000).await;
    produce_payment(&settings, &no_marketing, 5_000).await;
    assert!(running.processed(6, Duration::from_secs(60)).await);
    running.stop().await;

    let (addr, key) = start_api(&mut settings, store.clone()).await;
    let url = format!("http://{addr}/v1/decisions");
    let client = reqwest::Client::new();

    // The card user, in the app: the offer their payment qualifies them for, with the feature.
    let (status, body) = ask(&client, &url, Some(&key), decision(&card_user, "APP")).await;
    assert_eq!(status, 200, "{body}");
    let offered: DecisionAnswer = serde_json::from_value(body).unwrap();
    assert_eq!(offered.offers.len(), 1, "{offered:?}");
    let offer = &offered.offers[0];
    assert_eq!(
        (offer.rule_id.as_str(), offer.product.as_str(), offer.value),
        ("offer-app-card", "CREDIT_CARD", 50.0)
    );
    assert_eq!(offer.features["credit_card_txn_count_30d"], 1.0);
    let propensity = offer.propensity.unwrap();
    assert!(
        (propensity - 1.0 / (1.0 + 0.5f64.exp())).abs() < 1e-9,
        "{propensity}"
    );
    assert!((offer.priority - propensity * 50.0).abs() < 1e-9);
    assert!(offered.suppressed.is_none());
    assert!(offer
        .reasons
        .iter()
        .any(|r| r == "inbound request from APP"));

    // Why not: no consent, nothing the rules read, the control group.
    let reason = |body: &serde_json::Value| body["suppressed"]["reason"].as_str().map(String::from);
    let (status, body) = ask(&client, &url, Some(&key), decision(&no_marketing, "APP")).await;
    assert_eq!(
        (status, reason(&body).as_deref()),
        (200, Some("NO_CONSENT")),
        "{body}"
    );
    let (status, body) = ask(&client, &url, Some(&key), decision(&quiet, "APP")).await;
    assert_eq!(
        (status, reason(&body).as_deref()),
        (200, Some("NO_ELIGIBLE_RULE")),
        "{body}"
    );
    let (status, body) = ask(
        &client,
        &url,
        Some(&key),
        decision(&held_out, "CALL_CENTRE"),
    )
    .await;
    assert_eq!(
        (status, reason(&body).as_deref()),
        (200, Some("CONTROL_GROUP")),
        "{body}"
    );

    // Bad requests: each its status and code, and nothing decided.
    let bad: [(Option<&str>, String, u16, &str); 7] = [
        (None, decision(&card_user, "APP"), 401, "no_key"),
        (
            Some("not-a-key"),
            decision(&card_user, "APP"),
            401,
            "wrong_key",
        ),
        (Some(&key), "{\"customer_id\":".into(), 400, "bad_json"),
        (
            Some(&key),
            decision(&card_user, "FAX"),
            400,
            "unknown_channel",
        ),
        (
            Some(&key),
            decision("C-much-longer-than-sixteen", "APP"),
            400,
            "bad_customer_id",
        ),
        (Some(&key), "x".repeat(5_000), 413, "too_large"),
        (Some(&key), decision("", "APP"), 400, "bad_customer_id"),
    ];
    for (key, body, status, code) in bad {
        let (got, answer) = ask(&client, &url, key, body).await;
        assert_eq!(
            (got, answer["error"].as_str()),
            (status, Some(code)),
            "{answer}"
        );
    }

    // The audit topic holds the three decisions a rule held for (the offer, the consent and
    // the control group), each naming the decision it answered, and nothing else.
    let topic = &settings.topics.decisions_audit;
    let records = read_topic(&brokers, topic, 4, Duration::from_secs(5));
    let audits: Vec<DecisionAudit> = decode_outputs(&records, "DecisionAudit");
    let mut seen: Vec<(String, DecisionOutcome)> = audits
        .iter()
        .map(|a| (a.customer_id.clone(), a.outcome))
        .collect();
    seen.sort();
    let mut expected = vec![
        (card_user.clone(), DecisionOutcome::Offered),
        (no_marketing.clone(), DecisionOutcome::SuppressedNoConsent),
        (held_out.clone(), DecisionOutcome::ControlGroup),
    ];
    expected.sort();
    assert_eq!(seen, expected);
    // They went through the outbox in Redis, which the drainer empties behind them.
    let outbox = nbo_stream::api::outbox::outbox_key(&settings.kafka.group_id);
    let mut left = -1;
    for _ in 0..50 {
        left = store.raw(redis::cmd("XLEN").arg(&outbox)).await.unwrap();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "{outbox} is drained");
    let offered_audit = audits.iter().find(|a| a.customer_id == card_user).unwrap();
    assert_eq!(offered_audit.trigger_event_id, offered.decision_id);
    assert_eq!(
        offered_audit.decision_id.as_deref(),
        Some(offer.offer_id.as_str())
    );

    // The contract is served.
    let openapi = client
        .get(format!("http://{addr}/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let openapi: serde_json::Value = serde_json::from_slice(&openapi).unwrap();
    assert_eq!(openapi["openapi"], "3.0.3");
    assert!(openapi["paths"]["/v1/decisions"]["post"].is_object());
}

/// A Redis of the test's own on `port`, killed when dropped.
struct OwnRedis(std::process::Child);

impl OwnRedis {
    fn start(port: u16) -> Self {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server on the PATH (scripts/test.sh installs it)");
        Self(child)
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_the_api_answers_503_and_recovers() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let redis = OwnRedis::start(port);
    let cluster = MockCluster::new(1).unwrap();
    let mut settings = test_settings(&cluster.bootstrap_servers(), StateBackend::Redis);
    settings.redis.url = format!("redis://127.0.0.1:{port}");
    settings.redis.timeout = Duration::from_millis(500);
    for topic in settings.topics.all() {
        cluster.create_topic(topic, 1, 1).unwrap();
    }
    let store = connect_within(&settings, Duration::from_secs(10)).await;
    let (addr, key) = start_api(&mut settings, Arc::new(store)).await;
    let url = format!("http://{addr}/v1/decisions");
    let client = reqwest::Client::new();
    let ask_now = || ask(&client, &url, Some(&key), decision("C1", "WEB"));

    // A customer the stream has not seen: no profile, so no known consent.
    let (status, body) = ask_now().await;
    assert_eq!(status, 200, "{body}");
    drop(redis);
    let (status, body) = ask_now().await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("unavailable")),
        "{body}"
    );
    let _redis = OwnRedis::start(port);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = ask_now().await;
        if status == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no recovery: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The store of `settings`, once its Redis answers (within `timeout`).
async fn connect_within(settings: &Settings, timeout: Duration) -> RedisStore {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match RedisStore::connect(&settings.redis).await {
            Ok(store) => return store,
            Err(e) if std::time::Instant::now() > deadline => panic!("{}: {e}", settings.redis.url),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// On a real broker: a decision sees a payment the stream has just taken in within the
/// documented freshness (one checkpoint interval plus the stream's lag), and the API answers
/// while the stream is stopped and started again (it holds no partitions).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_tansu_a_decision_sees_a_payment_within_a_checkpoint_and_answers_through_a_restart() {
    let (_broker, brokers) = start_tansu();
    let mut settings = test_settings(&brokers, StateBackend::Redis);
    settings.redis.url = redis_url();
    settings.state.checkpoint_interval = Duration::from_secs(1);
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(rules.path().join("app.toml"), APP_RULE).unwrap();
    settings.rules.path = Some(rules.path().to_path_buf());
    let mut specs = nbo_stream::topics::embedded().unwrap();
    nbo_stream::topics::apply_names(&mut specs, &settings.topics);
    let client = nbo_stream::source::client_config(&settings.kafka);
    nbo_stream::topics::create(&client, &specs, Some(2))
        .await
        .unwrap();
    let store = Arc::new(RedisStore::connect(&settings.redis).await.unwrap());
    let customer = customer_where("T", |c| !in_control(c, "offer-app-card"));

    let running = Running::start(&settings, store.clone());
    produce_consenting_profile(&settings, &customer).await;
    assert!(running.processed(1, Duration::from_secs(60)).await);
    let (addr, key) = start_api(&mut settings, store.clone()).await;
    let url = format!("http://{addr}/v1/decisions");
    let http = reqwest::Client::new();
    let ask_now = || ask(&http, &url, Some(&key), decision(&customer, "APP"));
    let (status, body) = ask_now().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["suppressed"]["reason"], "NO_ELIGIBLE_RULE",
        "no card use yet"
    );

    // The payment, taken in by the stream: the next decisions offer the card.
    let paid = std::time::Instant::now();
    produce_payment(&settings, &customer, 5_000).await;
    let bound = settings.state.checkpoint_interval + Duration::from_secs(10);
    loop {
        let (status, body) = ask_now().await;
        assert_eq!(status, 200, "{body}");
        if body["offers"][0]["rule_id"] == "offer-app-card" {
            break;
        }
        assert!(
            paid.elapsed() < bound,
            "the payment was not seen within {bound:?}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen_after = paid.elapsed();

    // The stream stops and starts again; the API answers throughout, and the card it just
    // offered is cooling down (one contact policy: its own contacts count at once).
    running.stop().await;
    let (status, body) = ask_now().await;
    assert_eq!(
        (status, body["suppressed"]["reason"].as_str()),
        (200, Some("CONTACT_POLICY")),
        "{body}"
    );
    let running = Running::start(&settings, store.clone());
    let (status, _) = ask_now().await;
    assert_eq!(status, 200);
    // Stopped once it has joined its group: a pipeline stopped while its consumer is still
    // joining can hang in librdkafka's revoke as the consumer is dropped (seen once on Tansu;
    // see the issue notes), which is not what this test is about.
    tokio::time::sleep(Duration::from_secs(5)).await;
    running.stop().await;
    eprintln!("payment seen by the API {seen_after:?} after it was produced");
}

/// The app's offer for anyone who opens it: a savings account.
const APP_SAVINGS_RULE: &str = r#"id = "offer-app-savings"
version = 1
description = "in the app, a savings account"
triggers = ["InboundRequest"]
condition = "event.channel == 'APP'"
[offer]
offer_code = "APP-SAV-1"
product = "SAVINGS"
value = 20.0
channels = ["PUSH"]
cooldown = "1d"
propensity = { intercept = 0.0 }
"#;

/// The stream's offer: a credit card, by e-mail, after a card payment of 50.00 or more.
const STREAM_CARD_RULE: &str = r#"id = "offer-stream-card"
version = 1
description = "after a large card payment, a credit card by e-mail"
triggers = ["TransactionEvent"]
condition = "event.amount_minor >= 5000"
[offer]
offer_code = "MAIL-CARD-1"
product = "CREDIT_CARD"
value = 50.0
channels = ["EMAIL"]
cooldown = "1d"
propensity = { intercept = 0.0 }
"#;

/// The offer rules of `customer`'s contact history as the stream last stored it.
async fn stored_offers(settings: &Settings, store: &RedisStore, customer: &str) -> Vec<String> {
    use nbo_stream::state::StateStore;
    let key = hasher(settings).key(customer);
    let stored = store.load(&[key]).await.unwrap().pop().flatten();
    stored.map_or_else(Vec::new, |bytes| {
        nbo_stream::state::CustomerState::from_bytes(&bytes)
            .unwrap()
            .history
            .offers()
            .iter()
            .map(|o| o.rule_id.clone())
            .collect()
    })
}

/// Waits until the stream has stored an offer of `rule` in `customer`'s history.
async fn until_stored(settings: &Settings, store: &RedisStore, customer: &str, rule: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let offers = stored_offers(settings, store, customer).await;
        if offers.iter().any(|r| r == rule) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the stream did not store {customer}'s offer of {rule} within 30 s: it holds {offers:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_tansu_inbound_and_stream_offers_share_one_contact_policy() {
    let (_broker, brokers) = start_tansu();
    let mut settings = test_settings(&brokers, StateBackend::Redis);
    settings.redis.url = redis_url();
    settings.state.checkpoint_interval = Duration::from_secs(1);
    settings.operator.control_group_percent = 0;
    // One offer per customer per period, whoever makes it.
    settings.operator.max_offers_per_period = 1;
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(rules.path().join("app.toml"), APP_SAVINGS_RULE).unwrap();
    std::fs::write(rules.path().join("stream.toml"), STREAM_CARD_RULE).unwrap();
    settings.rules.path = Some(rules.path().to_path_buf());
    let mut specs = nbo_stream::topics::embedded().unwrap();
    nbo_stream::topics::apply_names(&mut specs, &settings.topics);
    let client = nbo_stream::source::client_config(&settings.kafka);
    nbo_stream::topics::create(&client, &specs, Some(2))
        .await
        .unwrap();
    let store = Arc::new(RedisStore::connect(&settings.redis).await.unwrap());
    let (inbound_first, stream_first) = ("IN1", "ST1");

    let running = Running::start(&settings, store.clone());
    produce_consenting_profile(&settings, inbound_first).await;
    produce_consenting_profile(&settings, stream_first).await;
    assert!(running.processed(2, Duration::from_secs(60)).await);
    let (addr, key) = start_api(&mut settings, store.clone()).await;
    let url = format!("http://{addr}/v1/decisions");
    let http = reqwest::Client::new();

    // Inbound first: the app's offer is made, and at once it counts for the API's next answer
    // (from the pending list: the stream may not have it yet).
    let body = decision(inbound_first, "APP");
    let (status, first) = ask(&http, &url, Some(&key), body.clone()).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        first["offers"][0]["rule_id"], "offer-app-savings",
        "{first}"
    );
    let (status, again) = ask(&http, &url, Some(&key), body).await;
    assert_eq!(
        (status, again["suppressed"]["reason"].as_str()),
        (200, Some("CONTACT_POLICY")),
        "{again}"
    );
    // The stream takes the contact into the customer's history from its topic; then a large
    // card payment qualifies the customer for the stream's offer, which the cap holds back.
    until_stored(&settings, &store, inbound_first, "offer-app-savings").await;
    produce_payment(&settings, inbound_first, 9_000).await;

    // Stream first: its offer is made and stored; the app's answer is then held back.
    produce_payment(&settings, stream_first, 9_000).await;
    until_stored(&settings, &store, stream_first, "offer-stream-card").await;
    let (status, held) = ask(&http, &url, Some(&key), decision(stream_first, "APP")).await;
    assert_eq!(
        (status, held["suppressed"]["reason"].as_str()),
        (200, Some("CONTACT_POLICY")),
        "{held}"
    );
    assert!(
        held["suppressed"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("1 offers already in the contact period")),
        "{held}"
    );

    // The audit topic: the stream held its offer back from the customer the app reached first,
    // and made it to the other.
    let records = read_topic(
        &brokers,
        &settings.topics.decisions_audit,
        5,
        Duration::from_secs(30),
    );
    let audits: Vec<DecisionAudit> = decode_outputs(&records, "DecisionAudit");
    let stream_outcome = |customer: &str| {
        audits
            .iter()
            .find(|a| a.customer_id == customer && a.rule_id == "offer-stream-card")
            .map(|a| a.outcome)
    };
    assert_eq!(
        stream_outcome(inbound_first),
        Some(DecisionOutcome::SuppressedContactPolicy),
        "{audits:#?}"
    );
    assert_eq!(
        stream_outcome(stream_first),
        Some(DecisionOutcome::Offered),
        "{audits:#?}"
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pending_list_keeps_the_newest_contacts_for_its_ttl_and_an_erasure_deletes_it() {
    use nbo_stream::event::{InboundContact, InboundContactKind, ProductCategory};
    use nbo_stream::state::{StateStore, StateWrite};
    let mut settings = test_settings("127.0.0.1:9", StateBackend::Redis);
    settings.redis.url = redis_url();
    let store = RedisStore::connect(&settings.redis).await.unwrap();
    let key = hasher(&settings).key("P1");
    let contact = |n: usize| InboundContact {
        event_id: format!("offer-{n}").into(),
        customer_id: "P1".into(),
        event_time: 1_700_000_000_000 + n as i64,
        decision_id: format!("in-{n}").into(),
        channel: "APP".into(),
        rule_id: "offer-app-savings".into(),
        rule_version: 1,
        product_category: ProductCategory::Savings,
        propensity: 0.5,
        outcome: InboundContactKind::Offered,
    };
    let contacts: Vec<InboundContact> = (0..40).map(contact).collect();
    let note = |batch: &[InboundContact]| {
        nbo_stream::api::contacts::note(&key, batch, Duration::from_secs(60)).unwrap()
    };
    store
        .each(&[note(&contacts[..30]), note(&contacts[30..])])
        .await
        .unwrap();

    // The newest 32, oldest first, each read back whole with the customer's id.
    let mut range = redis::cmd("LRANGE");
    range.arg(key.pending_contacts_key()).arg(0).arg(-1);
    let listed: redis::Value = store.raw(&range).await.unwrap();
    let read = nbo_stream::api::contacts::read("P1", &listed);
    assert_eq!(read.len(), nbo_stream::api::contacts::KEPT);
    assert_eq!(read, contacts[40 - nbo_stream::api::contacts::KEPT..]);
    let mut ttl = redis::cmd("PTTL");
    ttl.arg(key.pending_contacts_key());
    let left: i64 = store.raw(&ttl).await.unwrap();
    assert!((50_000..=60_000).contains(&left), "{left} ms left");

    // An erasure's state write deletes it with the state.
    let erased = StateWrite {
        key: key.clone(),
        state: vec![0],
        features: Vec::new(),
        removed: Vec::new(),
        replace: true,
        absent: false,
        erased: true,
        updated_at: 0,
        ttl_secs: 60,
    };
    store.store(&[erased]).await.unwrap();
    let left: Vec<redis::Value> = match store.raw::<redis::Value>(&range).await.unwrap() {
        redis::Value::Array(items) => items,
        other => panic!("{other:?}"),
    };
    assert!(left.is_empty(), "{left:?}");
}
