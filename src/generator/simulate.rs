//! The loop closed against a running pipeline: read the offers it sends, answer each as the
//! simulated customer would ([`super::responder`]), and write the answers to the offer-responses
//! topic, where the pipeline reads them.
//!
//! The simulator must be told the generator's `customers` and `seed`: it rebuilds the same
//! customers to know each one's persona. An offer for a customer it does not know (another
//! generator, a real customer) is counted and left unanswered.
//!
//! With `delivery_receipts`, every offer to a known customer is first confirmed DELIVERED (event
//! id `delivered:<offer-id>`, one second after it was decided), then answered or not.
//!
//! An accepted offer opens its product: the simulator also writes a `ProductOpened` record (event
//! id `opened:<offer-id>`, channel `OFFER`, the offer's id) to the product-openings topic at the
//! answer's time, as the bank's CRM would. The products customers open on their own come from
//! the generator (`generate --own-conversions`).
//!
//! With investigators ([`super::investigator`]), it also reads the alerts the pipeline raises and
//! closes each one's case `close_after` after it was raised (never past the clock): an
//! `AlertOutcome` (event id `closed:<alert-id>`, closed by `simulator`) on the alert-outcomes
//! topic, `CONFIRMED_RISK` at its rule's true precision, `FALSE_POSITIVE` otherwise.
//!
//! Delivery: the simulator reads offers (and alerts) in its own consumer group (`<kafka.group_id>-simulator`)
//! with offsets committed automatically, so after a restart it goes on where it was. Answers are
//! at least once: an offer read twice (a crash before its offset was committed) is answered twice,
//! with the same event id and the same answer; the pipeline's contact history keeps the latest
//! answer per offer, so a repeat changes nothing there. Responses are keyed by customer id,
//! stamped with their event time, and flushed before the simulator returns.

use super::investigator::{Closure, Investigators};
use super::personas::{EventFactory, Persona};
use super::responder::Responder;
use super::GenerateError;
use crate::codec::{Codec, Framing};
use crate::config::TopicSettings;
use crate::event::{
    AlertOutcome, Event, FraudParty, OfferResponse, OfferResponseKind, ProductOpened, Text,
};
use crate::output::{NextBestOffer, RiskAlert};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Message};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How to answer.
#[derive(Debug, Clone)]
pub struct SimulateOptions {
    /// The generator's customer count (the same customers, so the same personas).
    pub customers: u32,
    /// The generator's seed; also seeds the answers.
    pub seed: u64,
    /// Who answers how.
    pub responder: Responder,
    /// How long after an offer is decided its answer comes (event time; never past the clock).
    pub delay: Duration,
    /// Framing of the responses written.
    pub framing: Framing,
    /// Framing of the offers read (the pipeline's `codec.output_framing`).
    pub offer_framing: Framing,
    /// The simulator's consumer group.
    pub group_id: String,
    /// Return once no offer has arrived for this long (`None`: until stopped).
    pub idle_exit: Option<Duration>,
    /// Also confirm each offer's delivery (a DELIVERED response one second after it was
    /// decided), as a channel's delivery receipts do: then every offer a customer received is a
    /// trial for the learned propensity, answered or not.
    pub delivery_receipts: bool,
    /// Close the alerts the pipeline raises, at each rule's true precision (`None`: alerts are
    /// not read).
    pub investigators: Option<Investigators>,
    /// How long after an alert was raised its case is closed (event time; never past the clock).
    pub close_after: Duration,
}

/// What the simulator did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimulateSummary {
    /// Offers read.
    pub offers: u64,
    /// Delivery receipts written (DELIVERED).
    pub delivered: u64,
    /// Answers written, by response symbol.
    pub answers: BTreeMap<&'static str, u64>,
    /// Products opened by accepted offers (`ProductOpened` records written).
    pub opened: u64,
    /// Offers the customer ignored (no answer).
    pub ignored: u64,
    /// Offers for customers the simulator does not know.
    pub unknown_customers: u64,
    /// Offer and alert records that did not decode (not answered, not closed).
    pub undecodable: u64,
    /// Alerts read.
    pub alerts: u64,
    /// Alerts closed, by label.
    pub closed: BTreeMap<&'static str, u64>,
}

impl std::fmt::Display for SimulateSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "offers read: {}", self.offers)?;
        if self.delivered > 0 {
            writeln!(f, "  delivered: {}", self.delivered)?;
        }
        for (answer, n) in &self.answers {
            writeln!(f, "  {answer}: {n}")?;
        }
        writeln!(f, "  no answer: {}", self.ignored)?;
        if self.opened > 0 {
            writeln!(f, "  products opened: {}", self.opened)?;
        }
        if self.unknown_customers > 0 {
            writeln!(f, "  unknown customers: {}", self.unknown_customers)?;
        }
        if self.undecodable > 0 {
            writeln!(f, "  undecodable records: {}", self.undecodable)?;
        }
        if self.alerts > 0 {
            writeln!(f, "alerts read: {}", self.alerts)?;
            for (label, n) in &self.closed {
                writeln!(f, "  closed {label}: {n}")?;
            }
        }
        Ok(())
    }
}

/// Answers offers until `stop`, or until idle for `options.idle_exit`. Blocking: run it on a
/// blocking thread.
pub fn simulate(
    client: &ClientConfig,
    topics: &TopicSettings,
    codec: &Codec,
    options: &SimulateOptions,
    stop: &AtomicBool,
) -> Result<SimulateSummary, GenerateError> {
    let personas: HashMap<Text, Persona> = EventFactory::new(options.customers, options.seed, 0)
        .customers()
        .iter()
        .map(|c| (c.id.clone(), c.persona))
        .collect();
    let parse = |record: &str| -> Result<serde_avro_fast::Schema, GenerateError> {
        crate::codec::schemas::by_record(record)
            .map(|e| e.text)
            .unwrap_or_default()
            .parse()
            .map_err(|e| GenerateError::Simulate(format!("{record} schema: {e}")))
    };
    let schema = parse("NextBestOffer")?;
    let alert_schema = parse("RiskAlert")?;
    let mut consumer_config = client.clone();
    consumer_config
        .set("group.id", &options.group_id)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true");
    let consumer: BaseConsumer = consumer_config.create()?;
    let mut read = vec![topics.offers.as_str()];
    if options.investigators.is_some() {
        read.push(topics.alerts.as_str());
    }
    consumer.subscribe(&read)?;
    let producer: ThreadedProducer<DefaultProducerContext> = client.create()?;
    let mut summary = SimulateSummary::default();
    let mut last_offer = Instant::now();
    let delay_ms = i64::try_from(options.delay.as_millis()).unwrap_or(i64::MAX);
    while !stop.load(Ordering::Relaxed) {
        if options
            .idle_exit
            .is_some_and(|idle| last_offer.elapsed() >= idle)
        {
            break;
        }
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = message?;
        last_offer = Instant::now();
        if let (true, Some(investigators)) =
            (message.topic() == topics.alerts, &options.investigators)
        {
            summary.alerts += 1;
            let alert = message
                .payload()
                .and_then(|p| decode_output::<RiskAlert>(p, &alert_schema, options.offer_framing));
            let Some(alert) = alert else {
                summary.undecodable += 1;
                continue;
            };
            let closure = investigators.close(&alert.rule_id, &alert.alert_id);
            let at = alert
                .raised_at
                .saturating_add(i64::try_from(options.close_after.as_millis()).unwrap_or(i64::MAX))
                .min(crate::clock::now_ms());
            let payload =
                super::encode_event(codec, &closed(&alert, closure, at), options.framing)?;
            send(
                &producer,
                &topics.alert_outcomes,
                &alert.customer_id,
                &payload,
                at,
            )?;
            *summary.closed.entry(closure.label.as_str()).or_default() += 1;
            continue;
        }
        summary.offers += 1;
        let offer = message
            .payload()
            .and_then(|p| decode_output::<NextBestOffer>(p, &schema, options.offer_framing));
        let Some(offer) = offer else {
            summary.undecodable += 1;
            continue;
        };
        let Some(persona) = personas.get(offer.customer_id.as_str()) else {
            summary.unknown_customers += 1;
            continue;
        };
        // A response `after` ms past the decision (never past the clock), keyed by the customer.
        let respond = |prefix: &str, kind: OfferResponseKind, after: i64| {
            let at = offer
                .decided_at
                .saturating_add(after)
                .min(crate::clock::now_ms());
            let event = response(&offer, prefix, kind, at);
            let payload = super::encode_event(codec, &event, options.framing)?;
            let topic = &topics.offer_responses;
            send(&producer, topic, &offer.customer_id, &payload, at)
        };
        if options.delivery_receipts {
            respond("delivered", OfferResponseKind::Delivered, 1_000)?;
            summary.delivered += 1;
        }
        let Some(answer) =
            options
                .responder
                .answer(*persona, &offer.offer_id, offer.product_category)
        else {
            summary.ignored += 1;
            continue;
        };
        respond("response", answer, delay_ms)?;
        *summary.answers.entry(answer.as_str()).or_default() += 1;
        if answer == OfferResponseKind::Accepted {
            let at = offer
                .decided_at
                .saturating_add(delay_ms)
                .min(crate::clock::now_ms());
            let payload = super::encode_event(codec, &opened(&offer, at), options.framing)?;
            send(
                &producer,
                &topics.product_openings,
                &offer.customer_id,
                &payload,
                at,
            )?;
            summary.opened += 1;
        }
    }
    producer.flush(Duration::from_secs(30))?;
    Ok(summary)
}

/// The response `kind` to `offer` at `at`, its event id `<prefix>:<offer id>`.
fn response(offer: &NextBestOffer, prefix: &str, kind: OfferResponseKind, at: i64) -> Event {
    Event::OfferResponse(OfferResponse {
        event_id: compact_str::format_compact!("{prefix}:{}", offer.offer_id),
        customer_id: offer.customer_id.as_str().into(),
        event_time: at,
        offer_id: offer.offer_id.as_str().into(),
        response: kind,
    })
}

/// The product accepted `offer` opened, at `at`.
fn opened(offer: &NextBestOffer, at: i64) -> Event {
    Event::ProductOpened(ProductOpened {
        event_id: compact_str::format_compact!("opened:{}", offer.offer_id),
        customer_id: offer.customer_id.as_str().into(),
        event_time: at,
        product_category: offer.product_category,
        account_id: compact_str::format_compact!("A-{}", offer.offer_id),
        channel: "OFFER".into(),
        offer_id: Some(offer.offer_id.as_str().into()),
    })
}

/// The case of `alert`, closed at `at` as `closure` says.
fn closed(alert: &RiskAlert, closure: Closure, at: i64) -> Event {
    Event::AlertOutcome(AlertOutcome {
        event_id: compact_str::format_compact!("closed:{}", alert.alert_id),
        customer_id: alert.customer_id.as_str().into(),
        event_time: at,
        alert_id: alert.alert_id.as_str().into(),
        label: closure.label,
        fraud_party: closure.amount_minor.map(|_| FraudParty::ThirdParty),
        amount_minor: closure.amount_minor,
        currency: closure.amount_minor.map(|_| "EUR".into()),
        closed_by: "simulator".into(),
    })
}

/// An output record (offer, alert), with or without its Confluent header.
fn decode_output<T: serde::de::DeserializeOwned>(
    payload: &[u8],
    schema: &serde_avro_fast::Schema,
    framing: Framing,
) -> Option<T> {
    serde_avro_fast::from_datum_slice(framing.datum(payload)?, schema).ok()
}

/// Sends one response, waiting while the producer's queue is full.
fn send(
    producer: &ThreadedProducer<DefaultProducerContext>,
    topic: &str,
    key: &str,
    payload: &[u8],
    timestamp: i64,
) -> Result<(), GenerateError> {
    let mut record = BaseRecord::to(topic)
        .key(key)
        .payload(payload)
        .timestamp(timestamp);
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((
                rdkafka::error::KafkaError::MessageProduction(
                    rdkafka::types::RDKafkaErrorCode::QueueFull,
                ),
                back,
            )) => {
                record = back;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err((e, _)) => return Err(e.into()),
        }
    }
}
