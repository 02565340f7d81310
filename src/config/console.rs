//! `[console]`: the web console for the people who own the decisions (`nbo-stream console`).

use serde::Deserialize;
use std::time::Duration;

/// Who a console user is and what they may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The live view, the rules and their counts, health.
    Viewer,
    /// A viewer who may also look customers up and backtest rules.
    Analyst,
    /// An analyst who may also publish rules.
    Publisher,
}

impl Role {
    /// The role's name as configured.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Analyst => "analyst",
            Role::Publisher => "publisher",
        }
    }
}

/// How the console learns who is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ConsoleAuth {
    /// Users sign in with a name and password checked against `console.users` (argon2 hashes);
    /// a signed-in user holds a session cookie.
    #[default]
    Users,
    /// A single-sign-on proxy in front of the console (such as oauth2-proxy) has signed the user
    /// in and names them in `console.trusted_header`; the role comes from `console.users`. Only
    /// for a console that nothing but the proxy can reach.
    TrustedHeader,
}

/// One console user.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConsoleUser {
    /// Sign-in name (or, with `auth = "trusted_header"`, the name the proxy sends).
    pub name: String,
    /// What the user may do.
    pub role: Role,
    /// Argon2 hash of the password in PHC form (`$argon2id$v=19$...`), as made by
    /// `nbo-stream console hash-password`. Required with `auth = "users"`; unused with a proxy.
    #[serde(default)]
    pub password_hash: Option<String>,
}

/// The console's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleSettings {
    /// Address the console serves on.
    pub listen: String,
    /// Consumer group id of the console's Kafka client (default `<kafka.group_id>-console`). The
    /// console reads every partition of the output topics itself, so two consoles never split
    /// the decisions between them, and commits nothing.
    pub group_id: Option<String>,
    /// Offers and alerts kept for the live view, newest first (oldest dropped): the bound of the
    /// console's memory for decisions.
    pub keep_decisions: usize,
    /// Hours of per-minute decision counts kept for the chart, and read back from the topics when
    /// the console starts.
    pub chart_hours: u32,
    /// Dead letters kept per reason for the health page.
    pub keep_dead_letters: usize,
    /// How users are identified.
    pub auth: ConsoleAuth,
    /// The request header naming the user when `auth = "trusted_header"`.
    pub trusted_header: String,
    /// The users and their roles.
    #[serde(rename = "user")]
    pub users: Vec<ConsoleUser>,
    /// How long a sign-in lasts without use.
    #[serde(with = "humantime_serde")]
    pub session_idle: Duration,
    /// Most sessions held at once; the least recently used goes first.
    pub max_sessions: usize,
    /// Mark the session cookie `Secure` (sent over HTTPS only). Keep it on wherever browsers
    /// reach the console over TLS (directly or through a proxy); turn it off only for a console
    /// on plain HTTP on a trusted host (the demo does).
    pub secure_cookie: bool,
    /// The Grafana dashboard's address, linked from the health page.
    pub grafana_url: Option<String>,
    /// A folder of recorded event files (`.avro`, `.jsonl`, as `generate --out` writes them)
    /// that analysts may backtest edited rules on. Unset: no backtests from the console.
    pub recordings: Option<std::path::PathBuf>,
    /// Offer ids remembered with the rule that made them, so an `OfferResponse` counts towards
    /// its rule's acceptance rate; the oldest is forgotten first, and a response to a forgotten
    /// offer is counted as unattributed on the health page. About 150 bytes each.
    pub keep_offer_ids: usize,
    /// Days of alerts and of their closures (`bank.alert-outcomes.v1`) the console reads back at
    /// start and counts, per alert rule version, for the rules page's quality table (the last
    /// day, 7 days and 30 days; a shorter reach leaves the longer periods short). 1 to 90.
    pub quality_days: u32,
    /// Alert ids remembered with their rule version, so that a closure counts for the version
    /// that raised the alert; the oldest is forgotten first, and a closure of a forgotten alert
    /// is counted as unattributed. About 120 bytes each.
    pub keep_alert_ids: usize,
    /// How often the consumer lag of the `run` instances' group (`kafka.group_id`) is read for
    /// the health page: committed offsets against each input partition's end.
    #[serde(with = "humantime_serde")]
    pub lag_every: Duration,
    /// The request header a trusted reverse proxy puts the client's address in (such as
    /// `X-Forwarded-For`; its last address is taken, the one the proxy next to the console
    /// appended, since those before it are the client's to write). Unset: the TCP peer's address. Failed
    /// sign-ins are counted per name and client address, and per address; behind a proxy
    /// without this header every client shares the proxy's address.
    pub client_ip_header: Option<String>,
    /// The `run` instances whose readiness and processing latency the health page shows: the
    /// base URL of each one's telemetry endpoint (`telemetry.listen`), such as
    /// `"http://10.0.0.5:9464"`; `/readyz` and `/metrics` are read below it. Empty: the health
    /// page says how to list them.
    pub instances: Vec<String>,
    /// The `nbo-stream api` instances whose answers the live view shows by channel (answers per
    /// second by outcome, p99 latency): the base URL of each one's telemetry endpoint
    /// (`telemetry.listen`); `/metrics` is read below it, every `instances_every`. Empty: the
    /// live view has no channel table.
    pub api_instances: Vec<String>,
    /// How often each of `instances` (and `api_instances`) is read. The latency and rate shown cover the time
    /// between the last two readings.
    #[serde(with = "humantime_serde")]
    pub instances_every: Duration,
    /// Four-eyes publishing: a publisher's change (publish, promote, drop, rollback) is held in
    /// the rules history as a request until a second publisher approves it; nobody approves
    /// their own. Off by default; banks that require dual control turn it on.
    pub require_approval: bool,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8088".into(),
            group_id: None,
            keep_decisions: 10_000,
            chart_hours: 6,
            keep_dead_letters: 5,
            auth: ConsoleAuth::Users,
            trusted_header: "X-Forwarded-User".into(),
            users: Vec::new(),
            session_idle: Duration::from_secs(8 * 3600),
            max_sessions: 10_000,
            secure_cookie: true,
            grafana_url: None,
            recordings: None,
            keep_offer_ids: 100_000,
            quality_days: 30,
            keep_alert_ids: 1_000_000,
            lag_every: Duration::from_secs(10),
            instances: Vec::new(),
            api_instances: Vec::new(),
            // A Prometheus server's usual scrape interval: a window long enough to hold events.
            instances_every: Duration::from_secs(10),
            require_approval: false,
            client_ip_header: None,
        }
    }
}

impl ConsoleSettings {
    /// Checks the settings a console needs to start; `Err` names the field and what to do.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err((
                "console.listen",
                "must be an address like 127.0.0.1:8088".into(),
            ));
        }
        if self.keep_decisions == 0 || self.keep_decisions > 1_000_000 {
            return Err(("console.keep_decisions", "must be in 1..=1000000".into()));
        }
        if self.chart_hours == 0 || self.chart_hours > 48 {
            return Err(("console.chart_hours", "must be in 1..=48".into()));
        }
        if self.keep_offer_ids == 0 || self.keep_offer_ids > 10_000_000 {
            return Err(("console.keep_offer_ids", "must be in 1..=10000000".into()));
        }
        if self.quality_days == 0 || self.quality_days > 90 {
            return Err(("console.quality_days", "must be in 1..=90".into()));
        }
        if self.keep_alert_ids == 0 || self.keep_alert_ids > 50_000_000 {
            return Err(("console.keep_alert_ids", "must be in 1..=50000000".into()));
        }
        if self.lag_every < Duration::from_secs(1) {
            return Err((
                "console.lag_every",
                "must be at least 1s (such as \"10s\")".into(),
            ));
        }
        if self.instances_every < Duration::from_secs(1) {
            return Err((
                "console.instances_every",
                "must be at least 1s (such as \"10s\")".into(),
            ));
        }
        for url in &self.instances {
            check_instance_url(url).map_err(|reason| ("console.instances", reason))?;
        }
        if self.max_sessions == 0 {
            return Err(("console.max_sessions", "must be at least 1".into()));
        }
        if self.users.is_empty() {
            return Err((
                "console.user",
                "no users: add [[console.user]] blocks (name, role, password_hash)".into(),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for u in &self.users {
            if u.name.trim().is_empty() || !seen.insert(u.name.as_str()) {
                return Err((
                    "console.user.name",
                    format!("{:?} is empty or appears twice", u.name),
                ));
            }
            if self.auth == ConsoleAuth::Users {
                let Some(hash) = &u.password_hash else {
                    return Err((
                        "console.user.password_hash",
                        format!(
                            "user {:?} has none; make one with `nbo-stream console hash-password`",
                            u.name
                        ),
                    ));
                };
                if argon2::password_hash::PasswordHash::new(hash).is_err() {
                    return Err((
                        "console.user.password_hash",
                        format!("user {:?}: not a PHC hash string ($argon2id$...)", u.name),
                    ));
                }
            }
        }
        if self.auth == ConsoleAuth::TrustedHeader
            && axum::http::HeaderName::try_from(self.trusted_header.as_str()).is_err()
        {
            return Err(("console.trusted_header", "not a valid header name".into()));
        }
        Ok(())
    }
}

/// Checks one of `console.instances`: an `http` or `https` URL (which has a host), and no query,
/// fragment or credentials (the paths below it are appended).
fn check_instance_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| format!("{url:?} is not a URL ({e}); write it as \"http://host:9464\""))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("{url:?}: only http:// and https:// are read"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!(
            "{url:?}: a base URL takes no query or fragment (/readyz and /metrics are appended)"
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(format!(
            "{url:?}: no credentials in the URL (the telemetry endpoint needs none)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_instances(urls: &[&str]) -> ConsoleSettings {
        ConsoleSettings {
            auth: ConsoleAuth::TrustedHeader,
            users: vec![ConsoleUser {
                name: "vera".into(),
                role: Role::Viewer,
                password_hash: None,
            }],
            instances: urls.iter().map(|u| u.to_string()).collect(),
            ..ConsoleSettings::default()
        }
    }

    #[test]
    fn instance_urls_are_checked_naming_the_field_and_the_reason() {
        assert_eq!(with_instances(&[]).check(), Ok(()));
        let good = [
            "http://10.0.0.5:9464",
            "https://nbo-1.bank.example/telemetry/",
        ];
        assert_eq!(with_instances(&good).check(), Ok(()));
        for (url, reason) in [
            ("10.0.0.5:9464", "not a URL"),
            ("ftp://10.0.0.5", "only http"),
            ("http://10.0.0.5:9464/?x=1", "no query"),
            ("http://user:pw@10.0.0.5:9464", "no credentials"),
        ] {
            let (field, why) = with_instances(&["http://ok:9464", url])
                .check()
                .unwrap_err();
            assert_eq!(field, "console.instances", "{url}");
            assert!(why.contains(reason) && why.contains(url), "{url}: {why}");
        }
    }
}
