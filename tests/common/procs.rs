//! Child processes for the tests that kill things: the `nbo-stream run` binary, the mock broker
//! process and a dedicated Redis. Every one is killed (SIGKILL) and reaped when its guard drops,
//! so a failing test leaves nothing running.

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The pipeline binary.
pub const NBO_BIN: &str = env!("CARGO_BIN_EXE_nbo-stream");
/// The mock broker binary.
pub const MOCK_BROKER_BIN: &str = env!("CARGO_BIN_EXE_nbo-mock-broker");

/// A child process killed with SIGKILL and reaped on drop.
pub struct Guard {
    name: String,
    child: std::process::Child,
    log: Option<PathBuf>,
    /// Its stdout, kept open for the answers to [`Guard::command`].
    answers: Option<std::io::BufReader<std::process::ChildStdout>>,
}

impl Guard {
    /// Wraps `child`; `log` is where its stderr goes, for [`Guard::log_tail`].
    pub fn new(name: &str, child: std::process::Child, log: Option<PathBuf>) -> Self {
        Self {
            name: name.to_string(),
            child,
            log,
            answers: None,
        }
    }

    /// Writes `line` to the child's stdin and returns the line it answers on stdout (for a child
    /// started with both piped and its stdout handed over with [`Guard::answers_on`]).
    pub fn command(&mut self, line: &str) -> String {
        let stdin = self.child.stdin.as_mut().expect("stdin is not piped");
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("{}: writing `{line}`: {e}", self.name));
        let answers = self
            .answers
            .as_mut()
            .expect("no stdout to read answers from");
        let mut answer = String::new();
        answers
            .read_line(&mut answer)
            .unwrap_or_else(|e| panic!("{}: answer to `{line}`: {e}", self.name));
        answer.trim().to_string()
    }

    /// Keeps `stdout` (the child's, already partly read) for the answers to [`Guard::command`].
    pub fn answers_on(&mut self, stdout: std::io::BufReader<std::process::ChildStdout>) {
        self.answers = Some(stdout);
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9`, then reap.
    pub fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL on Unix
        let _ = self.child.wait();
    }

    /// Sends SIGTERM (the binary drains and exits 0).
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {}", self.name);
    }

    /// Exit status if it ended within `timeout`.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last `lines` lines of its stderr log (for failure messages).
    pub fn log_tail(&self, lines: usize) -> String {
        let Some(path) = &self.log else {
            return String::new();
        };
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// SIGTERM, then assert it exits 0 within `timeout` (what `run` promises on SIGTERM).
    pub fn stop_cleanly(&mut self, timeout: Duration) {
        self.sigterm();
        let status = self.wait_timeout(timeout);
        assert!(
            status.is_some_and(|s| s.success()),
            "{} did not exit 0 within {timeout:?} of SIGTERM ({status:?}); its log ends:\n{}",
            self.name,
            self.log_tail(30)
        );
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.kill9();
        // For a failure's post-mortem: NBOTEST_KEEP_LOGS=DIR keeps every process log there.
        if let (Some(dir), Some(log)) = (std::env::var_os("NBOTEST_KEEP_LOGS"), &self.log) {
            let _ = std::fs::create_dir_all(&dir);
            if let Some(name) = log.file_name() {
                let _ = std::fs::copy(log, std::path::Path::new(&dir).join(name));
            }
        }
    }
}

/// A command with no `NBO_*` variable inherited from the test's environment (the config loader
/// reads every one of them); the caller adds the ones it means to pass.
pub fn clean_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("NBO_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// The mock broker process (`src/bin/nbo-mock-broker.rs`) with `topics` (name, partitions)
/// created; returns it and its bootstrap servers. Its stdin is a pipe held by the guard, so it
/// also ends when the test process dies.
pub fn start_mock_broker(brokers: i32, topics: &[(String, i32)]) -> (Guard, String) {
    let mut cmd = clean_command(MOCK_BROKER_BIN);
    cmd.arg("--brokers").arg(brokers.to_string());
    for (name, partitions) in topics {
        cmd.arg("--topic").arg(format!("{name}:{partitions}"));
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start nbo-mock-broker");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut guard = Guard::new("nbo-mock-broker", child, None);
    let mut line = String::new();
    stdout
        .read_line(&mut line)
        .expect("read the bootstrap servers");
    let bootstrap = line.trim().to_string();
    assert!(!bootstrap.is_empty(), "nbo-mock-broker printed no address");
    // Kept open: the broker answers its stdin commands there (see `mock_broker_command`).
    guard.answers_on(stdout);
    (guard, bootstrap)
}

/// Sends a command to a running mock broker process (`down`: every broker closes its
/// connections and refuses new ones, an outage; `up`: they accept connections again; see
/// `src/bin/nbo-mock-broker.rs`) and asserts that it answered `ok`.
pub fn mock_broker_command(broker: &mut Guard, command: &str) {
    let answer = broker.command(command);
    assert_eq!(answer, "ok", "nbo-mock-broker refused `{command}`");
}

/// A dedicated `redis-server` that keeps its data across a restart (append-only file, fsync on
/// every write) in `dir`, on `port`.
pub struct RedisServer {
    /// Port it listens on.
    pub port: u16,
    dir: PathBuf,
    guard: Option<Guard>,
}

impl RedisServer {
    /// Starts it and waits until it answers PING.
    pub fn start(dir: &Path, port: u16) -> Self {
        let mut server = Self {
            port,
            dir: dir.to_path_buf(),
            guard: None,
        };
        server.restart();
        server
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it with SIGKILL (acknowledged writes are on disk: appendfsync always).
    pub fn kill(&mut self) {
        if let Some(mut g) = self.guard.take() {
            g.kill9();
        }
    }

    /// Starts it again on the same port and data directory; waits until it answers PING.
    pub fn restart(&mut self) {
        assert!(self.guard.is_none(), "redis-server already running");
        let log = self.dir.join("redis.log");
        let child = clean_command("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--dir",
                self.dir.to_str().expect("utf-8 dir"),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--logfile",
                log.to_str().expect("utf-8 dir"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (scripts/test.sh installs it)");
        self.guard = Some(Guard::new("redis-server", child, Some(log)));
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if redis_ping(self.port) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server on {} did not answer within 20 s", self.port);
    }
}

fn redis_ping(port: u16) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let mut buf = [0u8; 64];
    s.write_all(b"PING\r\n").is_ok()
        && s.read(&mut buf)
            .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
}

/// One HTTP GET on `127.0.0.1:<port>`: (status code, body), or None if nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((code, body))
}

/// Sum of every sample of `metric` (all label sets) on `/metrics`, whose labels contain
/// `label` ("" for any).
pub fn metric_sum(port: u16, metric: &str, label: &str) -> Option<f64> {
    let (_, body) = http_get(port, "/metrics")?;
    Some(
        body.lines()
            .filter(|l| {
                l.strip_prefix(metric)
                    .is_some_and(|rest| rest.starts_with([' ', '{']))
                    && l.contains(label)
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum(),
    )
}
