//! The Redis state store against a real `redis-server` (started by scripts/test.sh).

mod common;

use nbo_stream::config::RedisSettings;
use nbo_stream::state::redis::RedisStore;
use nbo_stream::state::{CustomerState, KeyHasher, StateStore};

async fn store() -> RedisStore {
    let settings = RedisSettings {
        url: common::redis_url(),
        ..RedisSettings::default()
    };
    RedisStore::connect(&settings).await.unwrap_or_else(|e| {
        panic!(
            "Redis at {} is needed (scripts/test.sh starts it): {e}",
            settings.url
        )
    })
}

#[tokio::test]
async fn a_batch_is_one_round_trip_each_way_and_keys_are_hashed_with_ttl() {
    let store = store().await;
    let hasher = KeyHasher::new(common::unique("secret-0123456789").as_bytes());
    let keys: Vec<_> = (0..50).map(|i| hasher.key(&format!("C{i}"))).collect();
    let mut state = CustomerState {
        max_event_time: 42,
        ..CustomerState::default()
    };
    state.mark_applied(0, 1, 99);
    common::write_and_read_back(
        &store,
        &keys,
        &state,
        &[("spend_24h", 12.5), ("txn_count_24h", 3.0)],
        3600,
    )
    .await;

    let hash = store.feature_hash(&keys[0]).await.unwrap();
    assert!(hash.contains(&("spend_24h".into(), "12.5".into())));
    assert!(hash.contains(&("_updated_at".into(), "42".into())));
    let ttl: i64 = store
        .raw(redis::cmd("TTL").arg(keys[0].features_key()))
        .await
        .unwrap();
    assert!((3500..=3600).contains(&ttl), "features key TTL {ttl}");
    let ttl: i64 = store
        .raw(redis::cmd("TTL").arg(keys[0].state_key()))
        .await
        .unwrap();
    assert!((3500..=3600).contains(&ttl), "state key TTL {ttl}");
    let found: Vec<String> = store.raw(redis::cmd("KEYS").arg("nbo:*C1*")).await.unwrap();
    assert!(found.is_empty(), "no raw customer id in any key: {found:?}");

    let missing = store.load(&[hasher.key("never-seen")]).await.unwrap();
    assert_eq!(missing, vec![None]);
}

/// A write of `key` with `features`, as a delta (no DEL first) or whole.
fn write_of(
    key: &nbo_stream::state::CustomerKey,
    features: &[(&str, f64)],
    replace: bool,
) -> nbo_stream::state::StateWrite {
    nbo_stream::state::StateWrite {
        key: key.clone(),
        state: CustomerState::default().to_bytes().unwrap(),
        features: features
            .iter()
            .map(|(n, v)| ((*n).into(), nbo_stream::features::FeatureValue::Num(*v)))
            .collect(),
        removed: vec![],
        replace,
        absent: false,
        erased: false,
        updated_at: 7,
        ttl_secs: 600,
    }
}

/// The user and the database of the URL hold on every connection the store opens: its loads and
/// writes land in that database, as that user.
#[tokio::test]
async fn the_urls_user_and_database_hold_for_loads_and_writes() {
    let admin = store().await;
    let user = common::unique("nbo-test-user");
    let _: () = admin
        .raw(
            redis::cmd("ACL")
                .arg("SETUSER")
                .arg(&user)
                .arg("on")
                .arg(">a-password")
                .arg("~*")
                .arg("+@all"),
        )
        .await
        .unwrap();
    let url = common::redis_url().replacen("redis://", &format!("redis://{user}:a-password@"), 1);
    let in_db_5 = RedisStore::connect(&RedisSettings {
        url: format!("{}/5", url.trim_end_matches('/')),
        ..RedisSettings::default()
    })
    .await
    .unwrap();

    let hasher = KeyHasher::new(common::unique("secret-0123456789").as_bytes());
    let key = hasher.key("C1");
    in_db_5
        .store(&[write_of(&key, &[("spend_24h", 3.0)], true)])
        .await
        .unwrap();
    assert!(in_db_5.load(std::slice::from_ref(&key)).await.unwrap()[0].is_some());
    let in_db_0: i64 = admin
        .raw(redis::cmd("EXISTS").arg(key.state_key()))
        .await
        .unwrap();
    assert_eq!(in_db_0, 0, "the write landed in database 0, not 5");

    let clients: String = admin.raw(redis::cmd("CLIENT").arg("LIST")).await.unwrap();
    let ours: Vec<&str> = clients
        .lines()
        .filter(|l| l.contains(&format!(" user={user} ")))
        .collect();
    // redis-rs's connection (its PING) and at least one of the store's own.
    assert!(ours.len() >= 2, "{clients}");
    assert!(ours.iter().all(|l| l.contains(" db=5 ")), "{clients}");

    // Connections Redis closed while idle are noticed when taken: the next calls go through at
    // the first try, on new connections.
    let _: i64 = admin
        .raw(redis::cmd("CLIENT").arg("KILL").arg("USER").arg(&user))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    in_db_5
        .store(&[write_of(&key, &[("spend_24h", 4.0)], false)])
        .await
        .expect("a write after Redis closed the idle connections");
    assert!(in_db_5.load(std::slice::from_ref(&key)).await.unwrap()[0].is_some());
    let _: () = admin
        .raw(redis::cmd("ACL").arg("DELUSER").arg(&user))
        .await
        .unwrap();
}

/// An error Redis answers inside a transaction fails the write with Redis's words, and the
/// store's next calls go through (on a fresh connection).
#[tokio::test]
async fn an_error_answer_fails_the_write_and_the_next_calls_go_through() {
    let store = store().await;
    let hasher = KeyHasher::new(common::unique("secret-0123456789").as_bytes());
    let (bad, good) = (hasher.key("C1"), hasher.key("C2"));
    // The feature hash's key holds a string: a delta's HSET on it is refused.
    let _: () = store
        .raw(redis::cmd("SET").arg(bad.features_key()).arg("not a hash"))
        .await
        .unwrap();
    let err = store
        .store(&[
            write_of(&good, &[("spend_24h", 1.0)], true),
            write_of(&bad, &[("spend_24h", 2.0)], false),
        ])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("WRONGTYPE"), "{err}");

    store
        .store(&[write_of(&good, &[("spend_24h", 5.0)], false)])
        .await
        .unwrap();
    let hash = store.feature_hash(&good).await.unwrap();
    assert!(hash.contains(&("spend_24h".into(), "5".into())), "{hash:?}");
    let loaded = store.load(&[good.clone(), bad.clone()]).await.unwrap();
    assert!(loaded[0].is_some(), "the good customer's state");
    let _: () = store
        .raw(redis::cmd("DEL").arg(bad.features_key()))
        .await
        .unwrap();
}
