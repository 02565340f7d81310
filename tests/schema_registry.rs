//! The Schema Registry client and `nbo-stream schemas register|check`, against the test registry
//! served from this process (tests/common/registry.rs: the documented Confluent REST subset;
//! no Confluent Schema Registry can be installed on the build machines).

mod common;

use common::procs::clean_command;
use common::registry::TestRegistry;
use nbo_stream::codec::schemas;
use nbo_stream::config::Secret;
use nbo_stream::registry::{subject_for_topic, Registry, RegistryError, RegistrySettings};
use std::process::Output;

const BIN: &str = env!("CARGO_BIN_EXE_nbo-stream");

fn client(url: &str) -> Registry {
    Registry::new(&RegistrySettings {
        url: Some(url.to_string()),
        ..RegistrySettings::default()
    })
    .expect("client")
}

fn transaction_schema() -> &'static str {
    schemas::by_record("TransactionEvent").unwrap().text
}

/// `record`'s local schema with its fields changed by `edit`.
fn edited(record: &str, edit: impl FnOnce(&mut Vec<serde_json::Value>)) -> String {
    let mut schema: serde_json::Value =
        serde_json::from_str(schemas::by_record(record).unwrap().text).unwrap();
    let fields = schema["fields"].as_array_mut().unwrap();
    edit(fields);
    schema.to_string()
}

#[tokio::test]
async fn a_writer_schema_is_fetched_by_id_once_and_the_same_schema_keeps_its_id() {
    let registry = TestRegistry::start().await;
    let subject = subject_for_topic("bank.transactions.v1");
    let id = registry.register(&subject, transaction_schema());
    let client = client(&registry.url());

    for _ in 0..3 {
        let schema = client.schema_by_id(id).await.unwrap();
        assert_eq!(schema, transaction_schema());
    }
    assert_eq!(registry.requests_for_id(id), 1, "one fetch per id");

    // Whitespace does not make another schema: same parsed form, same id, no new version.
    let reformatted = serde_json::to_string_pretty(
        &serde_json::from_str::<serde_json::Value>(transaction_schema()).unwrap(),
    )
    .unwrap();
    assert_eq!(client.register(&subject, &reformatted).await.unwrap(), id);
    let latest = client.latest(&subject).await.unwrap().unwrap();
    assert_eq!((latest.version, latest.id), (1, id));
    assert_eq!(client.subjects().await.unwrap(), vec![subject]);
}

#[tokio::test]
async fn an_unknown_id_or_subject_is_not_found_and_permanent() {
    let registry = TestRegistry::start().await;
    let client = client(&registry.url());

    let err = client.schema_by_id(4242).await.unwrap_err();
    assert!(
        matches!(&err, RegistryError::NotFound { what } if what.contains("4242")),
        "{err:?}"
    );
    assert!(!err.is_transient());
    assert_eq!(client.latest("no-such-topic-value").await.unwrap(), None);
    let err = client
        .is_compatible("no-such-topic-value", transaction_schema())
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn a_registry_that_is_down_is_transient_and_answers_again_when_up() {
    let registry = TestRegistry::start().await;
    let id = registry.register("bank.transactions.v1-value", transaction_schema());
    let client = client(&registry.url());

    registry.down().await;
    let err = client.schema_by_id(id).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(matches!(err, RegistryError::Unavailable { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&registry.url()),
        "names the URL: {err}"
    );
    assert!(client.subjects().await.unwrap_err().is_transient());

    registry.up().await;
    assert_eq!(client.schema_by_id(id).await.unwrap(), transaction_schema());
}

#[tokio::test]
async fn basic_auth_is_sent_and_a_wrong_password_says_what_to_check() {
    let registry = TestRegistry::start_with_auth("nbo-stream", "right-password").await;
    let id = registry.register("bank.transactions.v1-value", transaction_schema());
    let with_password = |password: &str| {
        Registry::new(&RegistrySettings {
            url: Some(registry.url()),
            username: Some("nbo-stream".into()),
            password: Some(Secret::new(password)),
            ..RegistrySettings::default()
        })
        .unwrap()
    };

    let ok = with_password("right-password");
    assert_eq!(ok.schema_by_id(id).await.unwrap(), transaction_schema());

    let wrong = with_password("wrong-password");
    let err = wrong.schema_by_id(id).await.unwrap_err();
    assert!(
        matches!(err, RegistryError::Refused { status: 401, .. }),
        "{err:?}"
    );
    assert!(!err.is_transient());
    let text = err.to_string();
    assert!(text.contains("NBO_SCHEMA_REGISTRY__PASSWORD"), "{text}");
    assert!(!text.contains("wrong-password") && !format!("{wrong:?}").contains("wrong-password"));
    let err = client(&registry.url()).subjects().await.unwrap_err();
    assert!(
        matches!(err, RegistryError::Refused { status: 401, .. }),
        "no credentials: {err:?}"
    );
}

#[tokio::test]
async fn compatibility_is_backward_with_the_registrys_reasons() {
    let registry = TestRegistry::start().await;
    let client = client(&registry.url());
    let subject = "bank.transactions.v1-value";
    // The registry holds a version written before `account_id` existed.
    let old = edited("TransactionEvent", |fields| {
        fields.retain(|f| f["name"] != "account_id")
    });
    registry.register(subject, &old);

    // The local schema requires account_id with no default: it cannot read the old records.
    let verdict = client
        .is_compatible(subject, transaction_schema())
        .await
        .unwrap();
    assert!(!verdict.compatible);
    assert!(
        verdict.messages.iter().any(|m| m.contains("account_id")),
        "{verdict:?}"
    );
    // Registering it is refused the same way (HTTP 409).
    let err = client
        .register(subject, transaction_schema())
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::Refused { status: 409, .. }),
        "{err:?}"
    );

    // With a default the new field is fine: old records read with the default.
    let with_default = edited("TransactionEvent", |fields| {
        for f in fields.iter_mut().filter(|f| f["name"] == "account_id") {
            f["default"] = "unknown".into();
        }
    });
    let verdict = client.is_compatible(subject, &with_default).await.unwrap();
    assert!(verdict.compatible, "{verdict:?}");
    let id = client.register(subject, &with_default).await.unwrap();
    let latest = client.latest(subject).await.unwrap().unwrap();
    assert_eq!((latest.version, latest.id), (2, id));
}

/// A config file for `schemas` pointing at `url`, with the memory backend (no Redis needed).
fn config_for(url: &str, dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("nbo.toml");
    std::fs::write(
        &path,
        format!("[state]\nbackend = \"memory\"\n\n[schema_registry]\nurl = \"{url}\"\n{extra}"),
    )
    .unwrap();
    path
}

fn schemas_cli(verb: &str, config: &std::path::Path, env: &[(&str, &str)]) -> Output {
    let mut command = clean_command(BIN);
    command.args(["schemas", verb, "--config"]).arg(config);
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("run nbo-stream")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn schemas_register_then_check_passes_and_registering_again_changes_nothing() {
    let registry = TestRegistry::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(&registry.url(), dir.path(), "");

    let out = schemas_cli("check", &config, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("bank.transactions.v1-value") && text(&out).contains("new"),
        "{}",
        text(&out)
    );

    let out = schemas_cli("register", &config, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let client = client(&registry.url());
    let mut subjects = client.subjects().await.unwrap();
    subjects.sort();
    assert_eq!(subjects.len(), 16, "12 inputs and 4 outputs: {subjects:?}");
    for topic in [
        "bank.transactions.v1",
        "bank.erasure-requests.v1",
        "bank.offers.v1",
    ] {
        assert!(subjects.contains(&subject_for_topic(topic)), "{subjects:?}");
    }
    let offers = client
        .latest("bank.offers.v1-value")
        .await
        .unwrap()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    let row = table
        .lines()
        .find(|l| l.starts_with("bank.offers.v1-value "))
        .unwrap_or_else(|| panic!("a row for the offers subject: {table}"));
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        columns,
        [
            "bank.offers.v1-value",
            "1",
            &offers.id.to_string(),
            "NextBestOffer"
        ]
    );

    let out = schemas_cli("check", &config, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("registered (version 1")
            .count(),
        16,
        "{}",
        text(&out)
    );

    let again = schemas_cli("register", &config, &[]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert_eq!(
        String::from_utf8_lossy(&again.stdout),
        table,
        "same versions and ids"
    );
    assert_eq!(client.subjects().await.unwrap().len(), 16);
}

#[tokio::test]
async fn schemas_check_names_each_incompatible_subject_and_exits_1() {
    let registry = TestRegistry::start().await;
    // Old producers never wrote account_id; the local reader requires it with no default.
    let old_transactions = edited("TransactionEvent", |fields| {
        fields.retain(|f| f["name"] != "account_id")
    });
    registry.register("bank.transactions.v1-value", &old_transactions);
    // Old producers wrote a field the local schema dropped: it is skipped, so this one passes.
    let old_clicks = edited("ClickstreamEvent", |fields| {
        fields.push(serde_json::json!({ "name": "legacy_referrer", "type": "string" }))
    });
    registry.register("bank.clickstream.v1-value", &old_clicks);
    // The local app schema was registered, then a producer moved the subject on to a version
    // the local reader cannot read (app_version as an int): still refused.
    registry.register(
        "bank.app.v1-value",
        schemas::by_record("AppEvent").unwrap().text,
    );
    let app_v2 = edited("AppEvent", |fields| {
        for f in fields.iter_mut().filter(|f| f["name"] == "app_version") {
            f["type"] = serde_json::json!("int");
        }
    });
    registry.register("bank.app.v1-value", &app_v2);
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(&registry.url(), dir.path(), "");

    let out = schemas_cli("check", &config, &[]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = |subject: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(subject))
            .unwrap_or_else(|| panic!("a line for {subject}: {shown}"))
            .to_string()
    };
    assert!(
        line("bank.transactions.v1-value").contains("INCOMPATIBLE"),
        "{shown}"
    );
    assert!(
        shown.contains("account_id"),
        "the registry's reason: {shown}"
    );
    assert!(line("bank.clickstream.v1-value").contains("compatible with version 1"));
    assert!(
        line("bank.app.v1-value").contains("INCOMPATIBLE with version 2"),
        "{shown}"
    );
    assert!(line("bank.social.v1-value").contains("new"), "{shown}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bank.transactions.v1-value")
            && stderr.contains("bank.app.v1-value")
            && !stderr.contains("bank.clickstream"),
        "the error names the incompatible subjects only: {stderr}"
    );

    // register checks first and registers nothing.
    let out = schemas_cli("register", &config, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("nothing was registered"),
        "{}",
        text(&out)
    );
    assert_eq!(client(&registry.url()).subjects().await.unwrap().len(), 3);
}

#[tokio::test]
async fn an_unreachable_registry_exits_2_naming_the_url() {
    let registry = TestRegistry::start().await;
    registry.down().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(&registry.url(), dir.path(), "timeout = \"2s\"\n");

    for verb in ["check", "register"] {
        let out = schemas_cli(verb, &config, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{verb}: {}", text(&out));
        assert!(stderr.contains(&registry.url()), "{verb}: {stderr}");
        assert!(stderr.contains("unavailable"), "{verb}: {stderr}");
    }
}

#[tokio::test]
async fn the_registry_password_comes_from_the_environment() {
    let registry = TestRegistry::start_with_auth("nbo-stream", "env-password").await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(&registry.url(), dir.path(), "username = \"nbo-stream\"\n");

    let out = schemas_cli(
        "register",
        &config,
        &[("NBO_SCHEMA_REGISTRY__PASSWORD", "env-password")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let out = schemas_cli(
        "check",
        &config,
        &[("NBO_SCHEMA_REGISTRY__PASSWORD", "not-the-password")],
    );
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(
        shown.contains("401") && shown.contains("NBO_SCHEMA_REGISTRY__PASSWORD"),
        "{shown}"
    );
    assert!(!shown.contains("not-the-password"), "{shown}");

    // In the file it is refused, before any request.
    let config = config_for(
        &registry.url(),
        dir.path(),
        "username = \"nbo-stream\"\npassword = \"env-password\"\n",
    );
    let out = schemas_cli("check", &config, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("schema_registry.password"),
        "{}",
        text(&out)
    );
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

#[tokio::test]
async fn tls_with_the_configured_ca_and_a_client_certificate() {
    let registry = TestRegistry::start_tls(
        &read("server.pem"),
        &read("server.key"),
        Some(&read("ca.pem")),
    )
    .await;
    let id = registry.register("bank.transactions.v1-value", transaction_schema());
    let settings = RegistrySettings {
        url: Some(registry.url()),
        ca_file: Some(fixture("ca.pem")),
        client_cert_file: Some(fixture("client.pem")),
        client_key_file: Some(fixture("client.key")),
        ..RegistrySettings::default()
    };
    let mutual = Registry::new(&settings).unwrap();
    assert_eq!(mutual.schema_by_id(id).await.unwrap(), transaction_schema());

    // Without a client certificate the handshake fails: no answer, so unavailable.
    let no_cert = Registry::new(&RegistrySettings {
        client_cert_file: None,
        client_key_file: None,
        ..settings.clone()
    })
    .unwrap();
    let err = no_cert.subjects().await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");

    // Without the CA the server's certificate is not trusted.
    let untrusted = Registry::new(&RegistrySettings {
        ca_file: None,
        ..settings
    })
    .unwrap();
    let err = untrusted.subjects().await.unwrap_err().to_string();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}

#[tokio::test]
async fn a_url_that_is_not_a_registry_is_refused_not_an_unknown_id() {
    let registry = TestRegistry::start().await;
    let id = registry.register("bank.transactions.v1-value", transaction_schema());
    // A wrong base path: the 404 carries no Schema Registry code, so no record would be
    // dead-lettered as an unknown schema id because of a configuration mistake.
    let wrong = client(&format!("{}/wrong/path", registry.url()));
    let err = wrong.schema_by_id(id).await.unwrap_err();
    assert!(
        matches!(&err, RegistryError::Refused { status: 404, reason } if reason.contains("schema_registry.url")),
        "{err:?}"
    );
}

#[test]
fn the_test_registry_serves_sync_tests_and_answers_in_confluents_format() {
    let registry = futures::executor::block_on(TestRegistry::start());
    let id = registry.register("bank.transactions.v1-value", transaction_schema());
    let port: u16 = registry.url().rsplit(':').next().unwrap().parse().unwrap();
    let get = |path: &str| common::procs::http_get(port, path).expect("an answer");

    let (status, body) = get(&format!("/schemas/ids/{id}"));
    assert_eq!(status, 200);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["schema"], transaction_schema());
    let (status, body) = get("/subjects/nope-value/versions/latest");
    assert_eq!(status, 404);
    assert!(body.contains("40401"), "{body}");
    let (status, body) = get("/schemas/ids/99");
    assert_eq!(status, 404);
    assert!(body.contains("40403"), "{body}");

    futures::executor::block_on(registry.down());
    assert!(
        common::procs::http_get(port, "/subjects").is_none(),
        "refused while down"
    );
    futures::executor::block_on(registry.up());
    assert_eq!(get("/subjects").0, 200);
    assert_eq!(registry.requests_for_id(id), 1);
}
