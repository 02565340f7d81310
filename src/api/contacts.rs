//! The contacts the API made that the stream has not stored yet: **how an inbound decision sees
//! the API's own earlier offers before the stream does**.
//!
//! Every contact an answer makes (`InboundContact`: an offer, or a control-group member held
//! out) goes two ways before the answer leaves:
//! - to the outbox (`super::outbox`), and from there to `bank.inbound-contacts.v1`, from which
//!   the stream takes it into the customer's contact history (`Operator::take_contact`), where
//!   its own decisions and, once checkpointed, the API's read it;
//! - to the customer's pending list `nbo:inbound:{<customer-key>}` (the state's hash tag, so one
//!   Redis Cluster slot with it), kept `api.pending_contacts_ttl` and at most [`KEPT`] long,
//!   which the API reads with the state (one round trip) and merges into it
//!   (`Operator::take_contact` again: a contact the stream has stored already is not taken
//!   twice).
//!
//! Entries hold no customer id (the key is the customer's keyed hash): the record is stored
//! with its `customer_id` empty, postcard-encoded after a format byte ([`ENTRY_FORMAT`]).

use crate::event::InboundContact;
use crate::state::{CustomerKey, StateError};

/// The first byte of a pending entry: the encoding of what follows. Bump it with any change to
/// [`InboundContact`]; an entry of another format is skipped when read.
pub const ENTRY_FORMAT: u8 = 1;

/// Pending contacts kept per customer (the newest): far more than the frequency cap lets
/// through in a stream's lag.
pub const KEPT: usize = 32;

/// Appends contacts, keeps the newest [`KEPT`] and sets the list's time to live, at once:
/// KEYS = the list; ARGV = the time to live in milliseconds, the kept length, then the entries.
const NOTE: &str = r"
for i = 3, #ARGV do redis.call('RPUSH', KEYS[1], ARGV[i]) end
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return #ARGV - 2
";

/// The command that notes `contacts` in `key`'s pending list for `ttl`, with its hash tag.
pub fn note(
    key: &CustomerKey,
    contacts: &[InboundContact],
    ttl: std::time::Duration,
) -> Result<(String, redis::Cmd), StateError> {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(NOTE)
        .arg(1)
        .arg(key.pending_contacts_key())
        .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
        .arg(KEPT);
    for c in contacts {
        let anonymous = InboundContact {
            customer_id: Default::default(),
            ..c.clone()
        };
        let mut bytes = vec![ENTRY_FORMAT];
        postcard::to_io(&anonymous, &mut bytes)
            .map_err(|e| StateError::Corrupt(format!("encoding a pending contact: {e}")))?;
        cmd.arg(bytes);
    }
    Ok((key.0.clone(), cmd))
}

/// The contacts of a pending list as read (LRANGE 0 -1), for customer `customer_id`. An entry
/// of another format, or that does not decode, is skipped: the stream's copy of it arrives all
/// the same.
pub fn read(customer_id: &str, value: &redis::Value) -> Vec<InboundContact> {
    let redis::Value::Array(items) = value else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|v| match v {
            redis::Value::BulkString(b) => match b.split_first() {
                Some((&ENTRY_FORMAT, body)) => postcard::from_bytes::<InboundContact>(body).ok(),
                _ => None,
            },
            _ => None,
        })
        .map(|c| InboundContact {
            customer_id: customer_id.into(),
            ..c
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{InboundContactKind, ProductCategory};

    #[test]
    fn a_pending_entry_holds_no_customer_id_and_reads_back_whole() {
        let c = InboundContact {
            event_id: "offer-1".into(),
            customer_id: "C0000042".into(),
            event_time: 1_700_000_000_000,
            decision_id: "in-1".into(),
            channel: "APP".into(),
            rule_id: "credit-card".into(),
            rule_version: 3,
            product_category: ProductCategory::CreditCard,
            propensity: 0.125,
            outcome: InboundContactKind::Offered,
        };
        let key = CustomerKey("abc".into());
        let (tag, cmd) = note(
            &key,
            std::slice::from_ref(&c),
            std::time::Duration::from_secs(60),
        )
        .unwrap();
        assert_eq!(tag, "abc");
        let packed = cmd.get_packed_command();
        assert!(!packed.windows(8).any(|w| w == b"C0000042"));
        assert!(packed.windows(17).any(|w| w == b"nbo:inbound:{abc}"));
        let mut entry = vec![ENTRY_FORMAT];
        let body = postcard::to_allocvec(&InboundContact {
            customer_id: Default::default(),
            ..c.clone()
        })
        .unwrap();
        entry.extend_from_slice(&body);
        let mut other_format = vec![ENTRY_FORMAT + 1];
        other_format.extend_from_slice(&body);
        let list = redis::Value::Array(vec![
            redis::Value::BulkString(entry),
            redis::Value::BulkString(b"not a contact".to_vec()),
            redis::Value::BulkString(other_format),
        ]);
        assert_eq!(read("C0000042", &list), vec![c]);
        assert!(read("C0000042", &redis::Value::Nil).is_empty());
    }
}
