//! What a customer's write is as Redis commands (`nbo:features:{..}` and `nbo:state:{..}`, see
//! the README's "State in Redis"), written through [`Commands`]: as RESP for the store's own
//! connections, or as redis-rs commands for Cluster and TLS, the same bytes either way.

use super::number_text::{value_len, NumberText};
use super::resp::{Commands, Resp};
use super::{CustomerKey, StateWrite};

/// Customers per MULTI/EXEC of a standalone write: a transaction of 32 customers (about 100
/// commands) keeps Redis from others for a few hundred microseconds at most.
pub const TRANSACTION_CUSTOMERS: usize = 32;

/// A standalone write's commands: the customers in MULTI/EXEC transactions of
/// [`TRANSACTION_CUSTOMERS`] each (what `RedisStore::store` sends).
pub fn transactions(out: &mut Resp, writes: &[StateWrite]) {
    for chunk in writes.chunks(TRANSACTION_CUSTOMERS) {
        out.word("MULTI");
        for w in chunk {
            customer_write(out, w);
        }
        out.word("EXEC");
    }
}

/// The commands of one customer's write, added to `out`.
///
/// Keys and feature values are formatted into stack buffers: into a [`Resp`] buffer that has
/// grown to its size, a write allocates nothing. The values' text is `FeatureValue`'s
/// `Display`, as other systems read it. A delta is two commands (HSET, SETEX); a whole rewrite
/// adds DEL before (unless the hash is known not to exist) and EXPIRE after.
pub fn customer_write(out: &mut impl Commands, w: &StateWrite) {
    let mut key_text = NumberText::default();
    let features_key = key_text.key("nbo:features:", &w.key);
    if (w.replace && !w.absent) || w.erased {
        out.command(2, 3 + features_key.len());
        out.arg(b"DEL");
        out.arg(features_key);
    }
    if w.erased {
        let pending = w.key.pending_contacts_key();
        out.command(2, 3 + pending.len());
        out.arg(b"DEL");
        out.arg(pending.as_bytes());
        set_ex(out, &w.key, &w.state, w.ttl_secs);
        return;
    }
    if !w.removed.is_empty() {
        let names = w.removed.iter().map(|n| n.len()).sum::<usize>();
        out.command(2 + w.removed.len(), 4 + features_key.len() + names);
        out.arg(b"HDEL");
        out.arg(features_key);
        for name in &w.removed {
            out.arg(name.as_bytes());
        }
    }
    let (mut number, mut stamp) = (NumberText::default(), NumberText::default());
    let updated_at = stamp.integer(w.updated_at);
    let args = 2 + 2 * (w.features.len() + 1);
    // Numbers are counted at their usual text's length (a size hint: a longer one grows the
    // buffer), so that no value is formatted twice.
    let size = "HSET".len()
        + features_key.len()
        + w.features
            .iter()
            .map(|(n, v)| n.len() + value_len(v))
            .sum::<usize>()
        + "_updated_at".len()
        + updated_at.len();
    out.command(args, size);
    out.arg(b"HSET");
    out.arg(features_key);
    for (name, value) in &w.features {
        out.arg(name.as_bytes());
        match value {
            crate::features::FeatureValue::Num(x) => out.arg(number.float(*x)),
            crate::features::FeatureValue::Text(t) => out.arg(t.as_bytes()),
        };
    }
    out.arg(b"_updated_at");
    out.arg(updated_at);
    // The hash's TTL is set when it is written whole (a customer's first write after a load,
    // then every `worker::FULL_REWRITE`), not with every delta: the TTL (the longest window
    // plus a margin, days) outlives the minutes between two full rewrites many times over.
    // A hash that expired between them is rebuilt whole, TTL included, at the next one.
    if w.replace {
        let ttl = number.integer(w.ttl_secs as i64);
        out.command(3, 6 + features_key.len() + ttl.len());
        out.arg(b"EXPIRE");
        out.arg(features_key);
        out.arg(ttl);
    }
    set_ex(out, &w.key, &w.state, w.ttl_secs);
}

/// `SETEX nbo:state:{<customer-key>} ttl value`, into `out`.
fn set_ex(out: &mut impl Commands, customer: &CustomerKey, value: &[u8], ttl_secs: u64) {
    let (mut number, mut key_text) = (NumberText::default(), NumberText::default());
    let ttl = number.integer(ttl_secs as i64);
    let key = key_text.key("nbo:state:", customer);
    // SETEX rather than SET … EX: the same effect in one argument and six bytes fewer.
    out.command(4, 5 + key.len() + ttl.len() + value.len());
    out.arg(b"SETEX");
    out.arg(key);
    out.arg(ttl);
    out.arg(value);
}

#[cfg(test)]
mod tests {
    /// The commands of a write carry each value as its `Display` text, whatever its size.
    #[test]
    fn a_write_is_the_hash_fields_as_text_the_ttl_and_the_state() {
        use crate::features::FeatureValue;
        let values = [1e300, 5e-324, -0.0, 0.1 + 0.2, 12.5, f64::MAX, -1234567.875];
        let mut features: Vec<(std::sync::Arc<str>, FeatureValue)> = values
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("f{i}").into(), FeatureValue::Num(*v)))
            .collect();
        features.push(("segment".into(), FeatureValue::Text("MASS".into())));
        let w = super::StateWrite {
            key: super::CustomerKey("abc".into()),
            state: vec![7, 0, 1],
            features: features.clone(),
            removed: vec![],
            replace: true,
            absent: false,
            erased: false,
            updated_at: 1_800_000_000_123,
            ttl_secs: 86_400,
        };
        let packed = |w: &super::StateWrite| {
            // The same bytes into RESP directly and through redis-rs's commands.
            let mut resp = super::Resp::default();
            super::customer_write(&mut resp, w);
            let mut pipe = redis::pipe();
            super::customer_write(&mut super::super::resp::PipelineCommands::new(&mut pipe), w);
            let through_pipe = pipe.get_packed_pipeline();
            assert_eq!(resp.bytes(), &through_pipe[..]);
            assert_eq!(resp.commands(), pipe.cmd_iter().count());
            String::from_utf8_lossy(&through_pipe).to_string()
        };

        let mut expected = redis::pipe();
        expected.add_command(redis::cmd("DEL").arg(w.key.features_key()).clone());
        let mut hset = redis::cmd("HSET");
        hset.arg(w.key.features_key());
        for (name, value) in &features {
            hset.arg(&**name).arg(value.to_string());
        }
        hset.arg("_updated_at").arg("1800000000123");
        expected.add_command(hset);
        expected.add_command(
            redis::cmd("EXPIRE")
                .arg(w.key.features_key())
                .arg(86_400)
                .clone(),
        );
        expected.add_command(
            redis::cmd("SETEX")
                .arg(w.key.state_key())
                .arg(86_400)
                .arg(&[7u8, 0, 1][..])
                .clone(),
        );
        assert_eq!(
            packed(&w),
            String::from_utf8_lossy(&expected.get_packed_pipeline())
        );

        // The first write of a customer with no stored state: its hash does not exist, so it
        // is not deleted; the rest is the same.
        let first = super::StateWrite {
            absent: true,
            ..w.clone()
        };
        let mut without_del = redis::pipe();
        for cmd in expected.cmd_iter().skip(1) {
            without_del.add_command(cmd.clone());
        }
        assert_eq!(
            packed(&first),
            String::from_utf8_lossy(&without_del.get_packed_pipeline())
        );

        // A delta renews no TTL: the hash's fields and the state, nothing else.
        let delta = super::StateWrite {
            replace: false,
            absent: false,
            features: features[..1].to_vec(),
            ..w.clone()
        };
        let text = packed(&delta);
        assert!(
            text.contains("HSET") && text.contains("SETEX\r\n"),
            "{text}"
        );
        assert!(!text.contains("EXPIRE") && !text.contains("DEL"), "{text}");

        // Features without a value any more: one HDEL of their names before the HSET.
        let removed = super::StateWrite {
            removed: vec!["gone".into(), "old".into()],
            ..delta
        };
        let text = packed(&removed);
        let hdel = format!(
            "*4\r\n$4\r\nHDEL\r\n${}\r\n{}\r\n$4\r\ngone\r\n$3\r\nold\r\n*",
            w.key.features_key().len(),
            w.key.features_key()
        );
        assert!(text.starts_with(&hdel), "{text}");

        // An erased customer: both of its other keys deleted, and its state written.
        let erased = super::StateWrite {
            erased: true,
            ..w.clone()
        };
        let text = packed(&erased);
        assert!(text.contains(&w.key.pending_contacts_key()), "{text}");
        assert!(!text.contains("HSET"), "{text}");
        assert_eq!(text.matches("DEL\r\n").count(), 2, "{text}");
        assert!(text.contains("SETEX\r\n"), "{text}");
    }
}
