//! The example configs in deploy/config/ load and validate, and NBO_* variables override them.
//! (One test per process section: environment variables are process-wide.)

use nbo_stream::config::Settings;
use std::path::Path;

#[test]
fn example_configs_load_and_environment_overrides_the_file() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/config");
    std::env::set_var("NBO_CUSTOMER_KEY_SECRET", "example-config-test-secret-0123");
    for file in ["local.toml", "production.toml"] {
        Settings::load(Some(&dir.join(file))).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
    let production = Settings::load(Some(&dir.join("production.toml"))).unwrap();
    production
        .console
        .check()
        .unwrap_or_else(|(field, reason)| panic!("production.toml: {field}: {reason}"));
    assert_eq!(production.console.users.len(), 3);
    production
        .api
        .check()
        .unwrap_or_else(|(field, reason)| panic!("production.toml: {field}: {reason}"));
    assert_eq!(production.api.keys.len(), 2);
    assert!(production.api.knows_channel("ATM") && production.api.knows_channel("APP"));
    std::env::set_var("NBO_KAFKA__BROKERS", "override:9092");
    std::env::set_var("NBO_KAFKA__WORKERS", "3");
    let s = Settings::load(Some(&dir.join("local.toml"))).unwrap();
    assert_eq!(s.kafka.brokers, "override:9092");
    assert_eq!(s.kafka.workers, 3);
    std::env::set_var("NBO_KAFKA__NO_SUCH_FIELD", "1");
    let err = Settings::load(Some(&dir.join("local.toml")))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no_such_field"), "{err}");
}
