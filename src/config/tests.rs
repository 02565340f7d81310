use super::*;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

fn memory_config(extra: &str) -> String {
    format!("[state]\nbackend = \"memory\"\n{extra}")
}

#[test]
fn defaults_plus_file_load() {
    let f = file(&memory_config(
        "[kafka]\nbrokers = \"b1:9092,b2:9092\"\nbatch_linger = \"50ms\"\n",
    ));
    let s = Settings::load(Some(f.path())).unwrap();
    assert_eq!(s.kafka.brokers, "b1:9092,b2:9092");
    assert_eq!(s.kafka.batch_linger, Duration::from_millis(50));
    assert_eq!(s.topics.transactions, "bank.transactions.v1");
}

#[test]
fn unknown_field_fails_naming_it() {
    let f = file(&memory_config("[kafka]\nbrokerz = \"x\"\n"));
    let err = Settings::load(Some(f.path())).unwrap_err().to_string();
    assert!(err.contains("brokerz"), "{err}");
}

#[test]
fn ill_typed_field_fails_naming_it() {
    let f = file(&memory_config("[kafka]\nworkers = \"many\"\n"));
    let err = Settings::load(Some(f.path())).unwrap_err().to_string();
    assert!(err.contains("workers"), "{err}");
}

#[test]
fn cross_field_rules_name_the_field() {
    let mut s = Settings::default();
    let err = s.validate().unwrap_err().to_string();
    assert!(err.contains("customer_key_secret"), "{err}");
    s.customer_key_secret = Some(Secret::new("0123456789abcdef0123"));
    s.validate().unwrap();
    s.operator.allowed_lateness = Duration::from_secs(400 * 24 * 3600);
    assert!(s
        .validate()
        .unwrap_err()
        .to_string()
        .contains("operator.allowed_lateness"));
    s.operator.allowed_lateness = Duration::from_secs(60);
    s.topics.offers = s.topics.alerts.clone();
    assert!(s
        .validate()
        .unwrap_err()
        .to_string()
        .contains("named twice"));
}

#[test]
fn a_state_format_this_release_does_not_write_fails_naming_the_field() {
    let f = file(&memory_config("write_format = 6\n"));
    let err = Settings::load(Some(f.path())).unwrap_err().to_string();
    assert!(err.contains("state.write_format"), "{err}");
    for format in [7, 8] {
        let f = file(&memory_config(&format!("write_format = {format}\n")));
        assert_eq!(
            Settings::load(Some(f.path())).unwrap().state.write_format,
            format
        );
    }
}

#[test]
fn secrets_never_print() {
    let s = Settings {
        customer_key_secret: Some(Secret::new("super-secret-value")),
        ..Settings::default()
    };
    assert!(!format!("{s:?}").contains("super-secret-value"));
}

#[test]
fn missing_file_says_so() {
    let err = Settings::load(Some(Path::new("/nonexistent/nbo.toml")))
        .unwrap_err()
        .to_string();
    assert!(err.contains("file not found"), "{err}");
}

#[test]
fn schema_registry_section_loads_and_its_rules_name_the_field() {
    let f = file(&memory_config(
        "[schema_registry]\nurl = \"https://registry.kafka:8081\"\nusername = \"nbo\"\ntimeout = \"2s\"\n",
    ));
    let s = Settings::load(Some(f.path())).unwrap();
    assert_eq!(
        s.schema_registry.url.as_deref(),
        Some("https://registry.kafka:8081")
    );
    assert_eq!(s.schema_registry.timeout, Duration::from_secs(2));
    assert_eq!(
        Settings::default().schema_registry.timeout,
        Duration::from_secs(5)
    );

    let mut s = Settings {
        customer_key_secret: Some(Secret::new("0123456789abcdef0123")),
        ..Settings::default()
    };
    s.schema_registry.url = Some("registry:8081".into());
    let err = s.validate().unwrap_err().to_string();
    assert!(
        err.contains("schema_registry.url") && err.contains("http"),
        "{err}"
    );
    s.schema_registry.url = Some("https://nbo:pw@registry:8081".into());
    let err = s.validate().unwrap_err().to_string();
    assert!(err.contains("NBO_SCHEMA_REGISTRY__PASSWORD"), "{err}");
    s.schema_registry.url = Some("https://registry:8081".into());
    s.schema_registry.client_cert_file = Some("/etc/nbo/client.pem".into());
    let err = s.validate().unwrap_err().to_string();
    assert!(err.contains("client_key_file"), "{err}");
    s.schema_registry.client_key_file = Some("/etc/nbo/client.key".into());
    s.validate().unwrap();
}

#[test]
fn a_registry_password_in_the_file_is_refused() {
    let f = file(&memory_config(
        "[schema_registry]\nurl = \"https://registry:8081\"\nusername = \"nbo\"\npassword = \"in-the-file\"\n",
    ));
    let err = Settings::load(Some(f.path())).unwrap_err().to_string();
    assert!(
        err.contains("schema_registry.password") && err.contains("NBO_SCHEMA_REGISTRY__PASSWORD"),
        "{err}"
    );
    assert!(!err.contains("in-the-file"), "{err}");
}

#[test]
fn uplift_and_ramp_settings_load_and_bad_ones_name_their_field() {
    let f = file(&memory_config(
        "[operator]\ncontrol_group_period = \"90d\"\n[operator.uplift]\nwindow = \"14d\"\n[operator.learning]\nramp_positives = 200\n",
    ));
    let s = Settings::load(Some(f.path())).unwrap();
    assert_eq!(
        s.operator.control_group_period,
        Some(Duration::from_secs(90 * 86_400))
    );
    assert_eq!(s.operator.uplift.window, Duration::from_secs(14 * 86_400));
    assert_eq!(s.operator.learning.ramp_positives, 200);
    let s = Settings {
        customer_key_secret: Some(Secret::new("0123456789abcdef0123")),
        ..Settings::default()
    };
    s.validate().unwrap();
    for (field, edit) in [
        (
            "operator.uplift.window",
            (|s: &mut Settings| s.operator.uplift.window = Duration::ZERO) as fn(&mut Settings),
        ),
        ("operator.control_group_period", |s| {
            s.operator.control_group_period = Some(Duration::from_millis(10))
        }),
        ("operator.learning.ramp_start", |s| {
            s.operator.learning.ramp_start = 0.0
        }),
    ] {
        let mut bad = s.clone();
        edit(&mut bad);
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains(field), "{field}: {err}");
    }
}
