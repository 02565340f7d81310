//! The console's tests: a pipeline on the mock cluster with the console beside it, users of
//! each role, and the events and rules they use.

use super::*;
use nbo_stream::codec::{Codec, Framing};
use nbo_stream::config::console::{ConsoleUser, Role};
use nbo_stream::config::{Settings, StateBackend};
use nbo_stream::event::{
    ContactChannel, CustomerProfile, LifecycleStage, OfferResponse, OfferResponseKind,
    PaymentMethod, TransactionEvent, TxnChannel, TxnType,
};
use nbo_stream::state::memory::MemoryStore;
use nbo_stream::state::StateStore;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};
use std::sync::Arc;
use std::time::Duration;

pub const RULE: &str = r#"
id = "test-big-payment"
version = 1
description = "A payment of 9,000 or more"
triggers = ["TransactionEvent"]
condition = "event.amount_minor >= 900000"

[alert]
kind = "FRAUD"
severity = "HIGH"
cooldown = "1m"
"#;

pub const SHADOW_RULE: &str = r#"id = "test-shadow-payment"
version = 1
description = "A payment of 5,000 or more, tried in shadow"
triggers = ["TransactionEvent"]
condition = '''
event.amount_minor >= 500000
'''

[alert]
kind = "FRAUD"
severity = "LOW"
cooldown = "1m"
"#;

/// An offer rule for a payment of 3,000 up to 5,000 (below [`SHADOW_RULE`] and [`RULE`]).
pub const OFFER_RULE: &str = r#"
id = "test-card-offer"
version = 1
description = "A rewards card after a payment of 3,000 to 5,000"
triggers = ["TransactionEvent"]
condition = "event.amount_minor >= 300000 && event.amount_minor < 500000"

[offer]
offer_code = "CC-TEST-01"
product = "CREDIT_CARD"
value = 100.0
channels = ["EMAIL"]
cooldown = "30d"
propensity = { intercept = 0.0, weights = {} }
"#;

pub fn user(name: &str, role: Role, password: &str) -> ConsoleUser {
    ConsoleUser {
        name: name.into(),
        role,
        password_hash: Some(nbo_stream::console::auth::hash_password(password).unwrap()),
    }
}

pub fn now_ms() -> i64 {
    nbo_stream::console::now_ms()
}

/// Signs in; returns the `Cookie` header value of the session.
pub async fn sign_in(
    http: &reqwest::Client,
    base: &str,
    name: &str,
    password: &str,
) -> Option<String> {
    let r = http
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("name={name}&password={password}"))
        .send()
        .await
        .unwrap();
    let cookie = r.headers().get("set-cookie")?.to_str().ok()?;
    Some(cookie.split(';').next()?.to_string())
}

pub async fn get(http: &reqwest::Client, url: String, cookie: &str) -> (u16, String) {
    let r = http.get(url).header("cookie", cookie).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The CSRF token a page carries.
pub fn csrf(page: &str) -> String {
    let at = page.find("name=\"csrf\" content=\"").expect("csrf meta") + 21;
    page[at..at + 64].to_string()
}

/// Produces one input record of Avro record `record` to `topic`, keyed by `customer`.
pub async fn produce_input<T: serde::Serialize>(
    settings: &Settings,
    topic: &str,
    record: &str,
    customer: &str,
    value: &T,
) {
    let producer: FutureProducer = nbo_stream::source::client_config(&settings.kafka)
        .create()
        .unwrap();
    let payload = Codec::with_defaults()
        .unwrap()
        .encode_framed(record, value, Framing::Confluent)
        .unwrap();
    producer
        .send(
            FutureRecord::to(topic).key(customer).payload(&payload),
            Duration::from_secs(5),
        )
        .await
        .expect("produced");
}

/// Produces the profile of `customer`, who consents to marketing by e-mail.
pub async fn produce_consenting_profile(settings: &Settings, customer: &str) {
    let profile = CustomerProfile {
        customer_id: customer.into(),
        updated_at: now_ms() - 60_000,
        lifecycle_stage: LifecycleStage::Growing,
        segment: "MASS".into(),
        credit_score: Some(720),
        consent_marketing: true,
        consent_profiling: true,
        contact_channels: vec![ContactChannel::Email],
    };
    let topic = &settings.topics.customer_profile;
    produce_input(settings, topic, "CustomerProfile", customer, &profile).await;
}

/// Produces a customer's response to offer `offer_id`.
pub async fn produce_response(
    settings: &Settings,
    customer: &str,
    offer_id: &str,
    response: OfferResponseKind,
) {
    let r = OfferResponse {
        event_id: format!("RESP-{offer_id}").into(),
        customer_id: customer.into(),
        event_time: now_ms(),
        offer_id: offer_id.into(),
        response,
    };
    let topic = &settings.topics.offer_responses;
    produce_input(settings, topic, "OfferResponse", customer, &r).await;
}

pub async fn produce_payment(settings: &Settings, customer: &str, amount_minor: i64) {
    let txn = TransactionEvent {
        event_id: format!("E-{customer}-{amount_minor}").into(),
        customer_id: customer.into(),
        event_time: now_ms(),
        account_id: "A1".into(),
        txn_type: TxnType::CardPayment,
        amount_minor,
        currency: "EUR".into(),
        payment_method: PaymentMethod::CreditCard,
        merchant_category: None,
        channel: TxnChannel::Online,
        country: "DE".into(),
        balance_after_minor: None,
    };
    let topic = &settings.topics.transactions;
    produce_input(settings, topic, "TransactionEvent", customer, &txn).await;
}

/// A recording (JSON lines) of three payments an hour ago: 6,000 and 7,000 by two customers
/// (each over [`SHADOW_RULE`]'s bound), and 1.
pub fn recording() -> String {
    let at = now_ms() - 3_600_000;
    [("REC-1", 600_000), ("REC-2", 700_000), ("REC-3", 100)]
        .iter()
        .enumerate()
        .map(|(i, (customer, amount))| {
            let txn = TransactionEvent {
                event_id: format!("R{i}").into(),
                customer_id: (*customer).into(),
                event_time: at + i as i64,
                account_id: "A1".into(),
                txn_type: TxnType::CardPayment,
                amount_minor: *amount,
                currency: "EUR".into(),
                payment_method: PaymentMethod::CreditCard,
                merchant_category: None,
                channel: TxnChannel::Online,
                country: "DE".into(),
                balance_after_minor: None,
            };
            let record = serde_json::to_string(&txn).unwrap();
            format!("{{\"type\":\"bank.nbo.TransactionEvent\",\"record\":{record}}}\n")
        })
        .collect()
}

/// A pipeline on the mock cluster (in-memory state, the rule [`RULE`]) with the console beside
/// it, and users vera (viewer), ana (analyst) and pat (publisher), passwords `<role>-pass`.
pub struct ConsoleRun {
    /// The run's settings.
    pub settings: Settings,
    /// The pipeline's state, which the console reads.
    pub state: Arc<dyn StateStore>,
    /// The console's address, `http://host:port`.
    pub base: String,
    /// Bootstrap servers.
    pub brokers: String,
    stop: tokio::sync::watch::Sender<bool>,
    pipeline: tokio::task::JoinHandle<Result<(), nbo_stream::pipeline::PipelineError>>,
    _cluster: MockCluster<'static, DefaultProducerContext>,
    _rules: tempfile::TempDir,
}

impl ConsoleRun {
    /// Starts the pipeline and the console.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts the pipeline and the console, with `configure` applied to the settings last.
    pub async fn start_with(configure: impl FnOnce(&mut Settings)) -> Self {
        let cluster = MockCluster::new(1).unwrap();
        let brokers = cluster.bootstrap_servers();
        let mut settings = test_settings(&brokers, StateBackend::Memory);
        for topic in settings.topics.all() {
            cluster.create_topic(topic, 2, 1).unwrap();
        }
        let rules = tempfile::tempdir().unwrap();
        std::fs::write(rules.path().join("big-payment.toml"), RULE).unwrap();
        std::fs::write(rules.path().join("card-offer.toml"), OFFER_RULE).unwrap();
        // Every consenting customer gets the offer (none held back as control).
        settings.operator.control_group_percent = 0;
        settings.console.lag_every = Duration::from_secs(1);
        settings.rules.path = Some(rules.path().to_path_buf());
        // Neither test broker wakes a waiting fetch: answer fetches within 10 ms.
        settings
            .kafka
            .options
            .insert("fetch.wait.max.ms".into(), "10".into());
        settings.console.listen = "127.0.0.1:0".into();
        // The tests reach the console over plain HTTP on loopback.
        settings.console.secure_cookie = false;
        std::fs::write(rules.path().join("payments.jsonl"), recording()).unwrap();
        settings.console.recordings = Some(rules.path().to_path_buf());
        settings.console.users = vec![
            user("vera", Role::Viewer, "viewer-pass"),
            user("ana", Role::Analyst, "analyst-pass"),
            user("pat", Role::Publisher, "publisher-pass"),
            user("quinn", Role::Publisher, "second-publisher-pass"),
        ];
        configure(&mut settings);
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let state: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
        let deps = nbo_stream::pipeline::Dependencies {
            store: state.clone(),
            health: Default::default(),
            progress: Default::default(),
        };
        let run_settings = settings.clone();
        let pipeline =
            tokio::spawn(
                async move { nbo_stream::pipeline::run(&run_settings, deps, stop_rx).await },
            );
        let addr = nbo_stream::console::start_with(&settings, Some(state.clone()))
            .await
            .expect("console");
        Self {
            settings,
            state,
            base: format!("http://{addr}"),
            brokers,
            stop,
            pipeline,
            _cluster: cluster,
            _rules: rules,
        }
    }

    /// Stops the pipeline; it must stop cleanly.
    pub async fn stop(self) {
        self.stop.send(true).unwrap();
        self.pipeline
            .await
            .unwrap()
            .expect("pipeline stopped cleanly");
    }
}
