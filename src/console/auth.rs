//! Who is asking, and what they may do: sign-in against argon2 hashes or a trusted proxy
//! header, sessions, roles and CSRF tokens.
//!
//! - `auth = "users"`: `POST /login` checks the password against the user's argon2 hash and sets
//!   a session cookie (`HttpOnly`, `SameSite=Strict`) holding a random 256-bit token. Sessions
//!   live in memory, expire after `console.session_idle` without use, and are capped at
//!   `console.max_sessions` (the least recently used goes first). A console restart signs
//!   everyone out.
//! - `auth = "trusted_header"`: the proxy's header names the user; a name not in
//!   `console.users` is refused (403).
//! - Failed sign-ins are counted per name: after [`MAX_FAILURES`] within [`LOCKOUT`], that name
//!   is refused without a password check until the oldest failure is [`LOCKOUT`] old (a guessing
//!   attack gets five tries per quarter hour per name). At most [`MAX_TRACKED`] names are
//!   tracked; the one failed longest ago is forgotten first.
//! - Every change (`POST` other than `/login`) carries the user's CSRF token, in the form field
//!   `csrf` or the `X-CSRF-Token` header: per session (users) or an HMAC of the name under a key
//!   drawn at start (proxy).

use crate::config::console::{ConsoleAuth, ConsoleSettings, Role};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use rand::Rng;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed sign-ins for a name from one source (client address) within [`LOCKOUT`] before that
/// name is locked out for that source. Keyed by name and source, so nobody can lock a known user
/// out from elsewhere at will: the user's own address is not locked.
pub const MAX_FAILURES: usize = 5;
/// Failed sign-ins from one source, whatever the names, within [`LOCKOUT`] before the source is
/// throttled: guessing across many names from one address is slowed too.
pub const MAX_SOURCE_FAILURES: usize = 20;
/// How long a failed sign-in counts against its name.
pub const LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// Most names whose failures are tracked at once. When full, names whose failures have all aged
/// out are forgotten; a new name is not tracked rather than a locked-out one forgotten, so a flood
/// of made-up names cannot lift a lockout.
pub const MAX_TRACKED: usize = 10_000;
/// Longest sign-in name accepted (longer ones are refused without a check or any memory kept).
pub const MAX_NAME_BYTES: usize = 256;

/// Why a sign-in was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Unknown name or wrong password (the answer does not say which).
    Wrong,
    /// Too many failures for this name: try again after this long.
    LockedOut(Duration),
}

/// The session cookie's name.
pub const COOKIE: &str = "nbo_console";

/// A signed-in user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Name, as configured.
    pub name: String,
    /// What they may do.
    pub role: Role,
    /// The token every change must carry.
    pub csrf: String,
}

impl User {
    /// Whether the user's role includes `role`.
    pub fn can(&self, role: Role) -> bool {
        self.role >= role
    }
}

struct Session {
    user: User,
    last_used: Instant,
}

/// Sign-in, sessions and CSRF.
pub struct Auth {
    mode: ConsoleAuth,
    header: String,
    users: HashMap<String, (Role, Option<String>)>,
    idle: Duration,
    max_sessions: usize,
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
    sources: Mutex<HashMap<String, VecDeque<Instant>>>,
    key: [u8; 32],
}

/// Failures per key within [`LOCKOUT`] (bounded by [`MAX_TRACKED`] keys and `cap` per key).
fn recent(
    map: &Mutex<HashMap<String, VecDeque<Instant>>>,
    key: &str,
    now: Instant,
) -> Option<(usize, Instant)> {
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    let times = map.get_mut(key)?;
    while times
        .front()
        .is_some_and(|t| now.duration_since(*t) >= LOCKOUT)
    {
        times.pop_front();
    }
    if times.is_empty() {
        map.remove(key);
        return None;
    }
    Some((times.len(), times[0]))
}

fn note(map: &Mutex<HashMap<String, VecDeque<Instant>>>, key: &str, now: Instant, cap: usize) {
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    if !map.contains_key(key) && map.len() >= MAX_TRACKED {
        map.retain(|_, t| {
            t.back()
                .is_some_and(|last| now.duration_since(*last) < LOCKOUT)
        });
        if map.len() >= MAX_TRACKED {
            return;
        }
    }
    let times = map.entry(key.to_string()).or_default();
    if times.len() >= cap {
        times.pop_front();
    }
    times.push_back(now);
}

/// The failure key of `name` signing in from `source`.
fn name_at(name: &str, source: &str) -> String {
    format!("{name}\u{0}{source}")
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes);
    hex::encode(bytes)
}

/// Compares two strings in time that does not depend on where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The argon2id hash of `password` in PHC form, with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    rand::rng().fill(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

impl Auth {
    /// From checked settings (see [`ConsoleSettings::check`]).
    pub fn new(settings: &ConsoleSettings) -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill(&mut key);
        Self {
            mode: settings.auth,
            header: settings.trusted_header.clone(),
            users: settings
                .users
                .iter()
                .map(|u| (u.name.clone(), (u.role, u.password_hash.clone())))
                .collect(),
            idle: settings.session_idle,
            max_sessions: settings.max_sessions,
            sessions: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            sources: Mutex::new(HashMap::new()),
            key,
        }
    }

    /// How users are identified.
    pub fn mode(&self) -> ConsoleAuth {
        self.mode
    }

    /// Whether `name` is locked out from `source` now (its own failures there, or the source's
    /// failures across names), and for how much longer.
    fn locked_out(&self, name: &str, source: &str, now: Instant) -> Option<Duration> {
        let wait = |(n, first): (usize, Instant), max: usize| {
            (n >= max).then(|| LOCKOUT.saturating_sub(now.duration_since(first)))
        };
        recent(&self.failures, &name_at(name, source), now)
            .and_then(|r| wait(r, MAX_FAILURES))
            .or_else(|| {
                recent(&self.sources, source, now).and_then(|r| wait(r, MAX_SOURCE_FAILURES))
            })
    }

    /// Counts a failed sign-in against `name` from `source`, and against `source` (bounded; see
    /// the module documentation).
    fn failed(&self, name: &str, source: &str, now: Instant) {
        note(&self.failures, &name_at(name, source), now, MAX_FAILURES);
        note(&self.sources, source, now, MAX_SOURCE_FAILURES);
    }

    /// Checks a name and password; on success opens a session and returns its token. The hash
    /// check is deliberately slow (argon2): call it off the async threads. An unknown name costs
    /// the same as a wrong password, so names cannot be probed by timing; a locked-out name is
    /// refused before any check.
    ///
    /// `source` is the client's address: failures count per name and source, and per source.
    pub fn sign_in(
        &self,
        name: &str,
        password: &str,
        source: &str,
    ) -> Result<(String, User), Refusal> {
        if name.len() > MAX_NAME_BYTES || name.chars().any(char::is_control) {
            return Err(Refusal::Wrong);
        }
        if let Some(wait) = self.locked_out(name, source, Instant::now()) {
            return Err(Refusal::LockedOut(wait));
        }
        static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let (role, hash) = match self.users.get(name) {
            Some((role, Some(hash))) => (Some(*role), hash.as_str()),
            _ => (
                None,
                DUMMY
                    .get_or_init(|| hash_password(&random_hex()).unwrap_or_default())
                    .as_str(),
            ),
        };
        let ok = PasswordHash::new(hash).is_ok_and(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        });
        let Some(role) = role.filter(|_| ok) else {
            self.failed(name, source, Instant::now());
            return Err(Refusal::Wrong);
        };
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&name_at(name, source));
        let user = User {
            name: name.to_string(),
            role,
            csrf: random_hex(),
        };
        let token = random_hex();
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        sessions.retain(|_, s| now.duration_since(s.last_used) < self.idle);
        while sessions.len() >= self.max_sessions {
            let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            sessions.remove(&oldest);
        }
        sessions.insert(
            token.clone(),
            Session {
                user: user.clone(),
                last_used: now,
            },
        );
        Ok((token, user))
    }

    /// Ends the session of `headers`' cookie, if any.
    pub fn sign_out(&self, headers: &HeaderMap) {
        if let Some(token) = cookie(headers, COOKIE) {
            self.sessions
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&token);
        }
    }

    /// The user a request comes from, if any.
    pub fn identify(&self, headers: &HeaderMap) -> Option<User> {
        match self.mode {
            ConsoleAuth::Users => {
                let token = cookie(headers, COOKIE)?;
                let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                let session = sessions.get_mut(&token)?;
                if now.duration_since(session.last_used) >= self.idle {
                    sessions.remove(&token);
                    return None;
                }
                session.last_used = now;
                Some(session.user.clone())
            }
            ConsoleAuth::TrustedHeader => {
                let name = headers.get(self.header.as_str())?.to_str().ok()?.trim();
                let (role, _) = self.users.get(name)?;
                let mut mac =
                    Hmac::<sha2::Sha256>::new_from_slice(&self.key).expect("any key length");
                mac.update(name.as_bytes());
                Some(User {
                    name: name.to_string(),
                    role: *role,
                    csrf: hex::encode(mac.finalize().into_bytes()),
                })
            }
        }
    }

    /// Whether a change carries `user`'s CSRF token (form field or `X-CSRF-Token` header).
    pub fn csrf_ok(user: &User, headers: &HeaderMap, form_token: Option<&str>) -> bool {
        let sent = form_token.or_else(|| headers.get("x-csrf-token")?.to_str().ok());
        sent.is_some_and(|t| same(t, &user.csrf))
    }
}

/// The value of cookie `name` in `headers`.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::console::ConsoleUser;

    fn settings() -> ConsoleSettings {
        ConsoleSettings {
            users: vec![ConsoleUser {
                name: "ana".into(),
                role: Role::Analyst,
                password_hash: Some(hash_password("correct horse").unwrap()),
            }],
            ..ConsoleSettings::default()
        }
    }

    #[test]
    fn sign_in_checks_the_password_and_the_cookie_finds_the_session() {
        let auth = Auth::new(&settings());
        assert_eq!(
            auth.sign_in("ana", "wrong", "10.0.0.1").err(),
            Some(Refusal::Wrong)
        );
        assert_eq!(
            auth.sign_in("nobody", "correct horse", "10.0.0.1").err(),
            Some(Refusal::Wrong)
        );
        let (token, user) = auth
            .sign_in("ana", "correct horse", "10.0.0.1")
            .expect("signed in");
        assert_eq!(user.role, Role::Analyst);
        let mut headers = HeaderMap::new();
        headers.insert("cookie", format!("a=b; {COOKIE}={token}").parse().unwrap());
        assert_eq!(auth.identify(&headers), Some(user.clone()));
        assert!(Auth::csrf_ok(&user, &headers, Some(&user.csrf)));
        assert!(!Auth::csrf_ok(&user, &headers, Some("forged")));
        assert!(!Auth::csrf_ok(&user, &headers, None));
        auth.sign_out(&headers);
        assert_eq!(auth.identify(&headers), None);
    }

    #[test]
    fn five_failures_lock_a_name_out_from_their_source_only() {
        let auth = Auth::new(&settings());
        let now = Instant::now();
        let (attacker, ana_desk) = ("203.0.113.9", "10.0.0.7");
        for _ in 0..MAX_FAILURES - 1 {
            auth.failed("ana", attacker, now);
        }
        assert_eq!(
            auth.locked_out("ana", attacker, now),
            None,
            "four failures: not yet"
        );
        let (_, _) = auth
            .sign_in("ana", "correct horse", attacker)
            .expect("signed in");
        assert_eq!(
            auth.locked_out("ana", attacker, now),
            None,
            "a success clears them"
        );
        for _ in 0..MAX_FAILURES {
            assert_eq!(
                auth.sign_in("ana", "wrong", attacker).err(),
                Some(Refusal::Wrong)
            );
        }
        match auth.sign_in("ana", "correct horse", attacker) {
            Err(Refusal::LockedOut(wait)) => assert!(wait <= LOCKOUT && wait > LOCKOUT / 2),
            other => panic!("the right password is refused while locked out: {other:?}"),
        }
        // The attacker cannot lock ana out of her own desk.
        assert!(auth.sign_in("ana", "correct horse", ana_desk).is_ok());
        let later = Instant::now() + LOCKOUT;
        assert_eq!(
            auth.locked_out("ana", attacker, later),
            None,
            "the lockout ends"
        );
        assert_eq!(auth.locked_out("nobody", attacker, now), None);
    }

    #[test]
    fn a_source_guessing_across_names_is_throttled_and_control_characters_are_refused() {
        let auth = Auth::new(&settings());
        let now = Instant::now();
        for i in 0..MAX_SOURCE_FAILURES {
            auth.failed(&format!("name{i}"), "203.0.113.9", now);
        }
        assert!(auth.locked_out("ana", "203.0.113.9", now).is_some());
        assert!(auth.locked_out("ana", "10.0.0.7", now).is_none());
        assert_eq!(
            auth.sign_in("ana\nINFO forged", "correct horse", "10.0.0.7")
                .err(),
            Some(Refusal::Wrong)
        );
    }

    #[test]
    fn a_proxy_header_names_only_configured_users() {
        let s = ConsoleSettings {
            auth: ConsoleAuth::TrustedHeader,
            ..settings()
        };
        let auth = Auth::new(&s);
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-user", "mallory".parse().unwrap());
        assert_eq!(auth.identify(&headers), None);
        headers.insert("x-forwarded-user", "ana".parse().unwrap());
        let user = auth.identify(&headers).expect("known user");
        assert!(user.can(Role::Viewer) && user.can(Role::Analyst) && !user.can(Role::Publisher));
    }
}
