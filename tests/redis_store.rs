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
