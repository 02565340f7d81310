//! Field checks after decoding: what Avro's types cannot say (non-empty ids, sane amounts,
//! timestamps after 1970 and not in the future, bounded strings, the key matching the customer,
//! coordinates on the globe, durations not negative).
//!
//! Every string field of every input record is bounded here (`max_string_len`): one left out
//! lets a producer put megabytes into a customer's state.

use super::{DecodeError, Validation};
use crate::event::Event;

fn invalid(field: &'static str, reason: impl Into<String>) -> DecodeError {
    DecodeError::InvalidField {
        field,
        reason: reason.into(),
    }
}

fn id(field: &'static str, value: &str, limits: &Validation) -> Result<(), DecodeError> {
    if value.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    text(field, value, limits)
}

fn text(field: &'static str, value: &str, limits: &Validation) -> Result<(), DecodeError> {
    if value.len() > limits.max_string_len {
        return Err(invalid(
            field,
            format!(
                "{} bytes, longer than the limit {}",
                value.len(),
                limits.max_string_len
            ),
        ));
    }
    Ok(())
}

fn time(
    field: &'static str,
    millis: i64,
    now_ms: i64,
    limits: &Validation,
) -> Result<(), DecodeError> {
    if millis <= 0 {
        return Err(invalid(field, format!("{millis} is not after 1970-01-01")));
    }
    if millis > now_ms.saturating_add(limits.max_future_skew_ms) {
        return Err(invalid(
            field,
            format!(
                "{millis} is {} ms in the future (allowed skew {} ms)",
                millis.saturating_sub(now_ms),
                limits.max_future_skew_ms
            ),
        ));
    }
    Ok(())
}

/// An optional coordinate: finite and within `-limit..=limit` degrees.
fn degrees(field: &'static str, value: Option<f64>, limit: f64) -> Result<(), DecodeError> {
    match value {
        Some(v) if !(-limit..=limit).contains(&v) => Err(invalid(
            field,
            format!("{v} is not a coordinate within -{limit}..{limit} degrees"),
        )),
        _ => Ok(()),
    }
}

fn amount(field: &'static str, minor: i64, limits: &Validation) -> Result<(), DecodeError> {
    if minor < 0 {
        return Err(invalid(field, format!("{minor} is negative")));
    }
    if minor > limits.max_amount_minor {
        return Err(invalid(
            field,
            format!("{minor} exceeds the limit {}", limits.max_amount_minor),
        ));
    }
    Ok(())
}

/// Checks a decoded event; `key` is the Kafka key, which must equal `customer_id`. A record
/// without a key is refused: partition p must hold exactly the customers of partition p, or two
/// workers (or instances) would write one customer's state.
pub(super) fn check(
    event: &Event,
    key: Option<&[u8]>,
    now_ms: i64,
    limits: &Validation,
) -> Result<(), DecodeError> {
    id("customer_id", event.customer_id(), limits)?;
    match key {
        None => return Err(DecodeError::MissingKey),
        Some(key) if key != event.customer_id().as_bytes() => return Err(DecodeError::KeyMismatch),
        Some(_) => {}
    }
    match event {
        Event::Transaction(e) => {
            id("event_id", &e.event_id, limits)?;
            time("event_time", e.event_time, now_ms, limits)?;
            amount("amount_minor", e.amount_minor, limits)?;
            text("account_id", &e.account_id, limits)?;
            currency(&e.currency)?;
            if let Some(category) = &e.merchant_category {
                text("merchant_category", category, limits)?;
            }
            if e.country.len() != 2 || !e.country.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(invalid(
                    "country",
                    format!("{:?} is not an ISO 3166 alpha-2 code", e.country),
                ));
            }
        }
        Event::Clickstream(e) => {
            id("event_id", &e.event_id, limits)?;
            time("event_time", e.event_time, now_ms, limits)?;
            text("page_url", &e.page_url, limits)?;
            text("session_id", &e.session_id, limits)?;
            if let Some(dwell) = e.dwell_ms.filter(|d| *d < 0) {
                return Err(invalid("dwell_ms", format!("{dwell} is negative")));
            }
        }
        Event::App(e) => {
            id("event_id", &e.event_id, limits)?;
            time("event_time", e.event_time, now_ms, limits)?;
            text("screen", &e.screen, limits)?;
            text("device_id", &e.device_id, limits)?;
            text("app_version", &e.app_version, limits)?;
            degrees("latitude", e.latitude, 90.0)?;
            degrees("longitude", e.longitude, 180.0)?;
        }
        Event::Social(e) => {
            id("event_id", &e.event_id, limits)?;
            time("event_time", e.event_time, now_ms, limits)?;
            if !(-1.0..=1.0).contains(&e.sentiment) {
                return Err(invalid(
                    "sentiment",
                    format!("{} is outside -1..1", e.sentiment),
                ));
            }
            text("platform", &e.platform, limits)?;
            if let Some(topic) = &e.topic {
                text("topic", topic, limits)?;
            }
        }
        Event::Feedback(e) => {
            id("event_id", &e.event_id, limits)?;
            time("event_time", e.event_time, now_ms, limits)?;
            if let Some(s) = e.satisfaction {
                if !(1..=5).contains(&s) {
                    return Err(invalid("satisfaction", format!("{s} is outside 1..5")));
                }
            }
        }
        Event::Partner(e) => {
            id("event_id", &e.event_id, limits)?;
            time("event_time", e.event_time, now_ms, limits)?;
            amount("amount_minor", e.amount_minor, limits)?;
            currency(&e.currency)?;
            text("partner", &e.partner, limits)?;
            text("category", &e.category, limits)?;
        }
        Event::Profile(e) => {
            time("updated_at", e.updated_at, now_ms, limits)?;
            text("segment", &e.segment, limits)?;
        }
        Event::OfferResponse(e) => {
            id("event_id", &e.event_id, limits)?;
            time("event_time", e.event_time, now_ms, limits)?;
            id("offer_id", &e.offer_id, limits)?;
        }
        Event::ProductOpened(e) => {
            id("event_id", &e.event_id, limits)?;
            time("event_time", e.event_time, now_ms, limits)?;
            text("account_id", &e.account_id, limits)?;
            text("channel", &e.channel, limits)?;
            if let Some(offer) = &e.offer_id {
                id("offer_id", offer, limits)?;
            }
        }
        Event::InboundContact(e) => {
            id("event_id", &e.event_id, limits)?;
            time("event_time", e.event_time, now_ms, limits)?;
            id("decision_id", &e.decision_id, limits)?;
            text("channel", &e.channel, limits)?;
            id("rule_id", &e.rule_id, limits)?;
            if !(0.0..=1.0).contains(&e.propensity) {
                return Err(invalid(
                    "propensity",
                    format!("{} is outside 0..1", e.propensity),
                ));
            }
        }
        Event::AlertOutcome(e) => {
            id("event_id", &e.event_id, limits)?;
            time("event_time", e.event_time, now_ms, limits)?;
            id("alert_id", &e.alert_id, limits)?;
            text("closed_by", &e.closed_by, limits)?;
            if let Some(a) = e.amount_minor {
                amount("amount_minor", a, limits)?;
                let Some(c) = &e.currency else {
                    return Err(invalid("currency", "must be given with amount_minor"));
                };
                currency(c)?;
            }
        }
        Event::Declared(e) => {
            // Field names are the source's own; the limits are the built-in records'.
            id("event_id", &e.event_id, limits)?;
            time("event_time", e.event_time, now_ms, limits)?;
            for v in &e.values {
                if let crate::event::Value::Str(s) = v {
                    text("string field", s, limits)?;
                }
            }
        }
        Event::Erasure(e) => {
            id("request_id", &e.request_id, limits)?;
            time("requested_at", e.requested_at, now_ms, limits)?;
        }
    }
    Ok(())
}

fn currency(code: &str) -> Result<(), DecodeError> {
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(invalid(
            "currency",
            format!("{code:?} is not an ISO 4217 code"),
        ));
    }
    Ok(())
}
