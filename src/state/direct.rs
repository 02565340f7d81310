//! The state store's own connections to a standalone Redis over plain TCP, for its two calls
//! that carry volume: a batch's loads and a checkpoint's writes.
//!
//! Each call writes its commands as RESP into the connection's buffer ([`Resp`]), sends them in
//! one write while it reads the answers (one per command, walked by [`skip_reply`], never built
//! into values), and keeps both buffers for the next call. A connection serves one call at a
//! time: calls that overlap (two workers, or a load beside a checkpoint's write) each take one
//! of their own, opened when none is idle, and up to [`IDLE`] are kept between calls.
//!
//! **Failure.** A connection whose call failed in any way (an error answer, a timeout, a closed
//! or garbled stream, its caller gone) is dropped, never reused: it may be out of step with its
//! answers. It is closed with a reset (zero linger), which throws away what the kernel still held
//! to send: a write that timed out must not reach Redis later, after the retry on another
//! connection and the checkpoints that follow it have written newer state (on redis-rs's one
//! connection the retry queued behind it). The idle ones are dropped with it, since what failed
//! one (a Redis restart) has most likely closed them all; the next call opens a fresh
//! connection. What the failed call had sent may have landed in part: its caller retries it
//! whole, which writes the same data again (see `state::redis`). An idle connection that Redis
//! (or anything between) closed meanwhile is noticed when it is taken, and not used.
//!
//! TLS (`rediss://`), Unix sockets and Redis Cluster go through redis-rs instead.

use super::resp::{skip_reply, Commands, Reply, Resp};
use super::StateError;
use std::sync::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Connections kept open between calls, at most.
const IDLE: usize = 8;

/// Where and how to connect, and the connections idle between calls.
pub(super) struct Direct {
    host: String,
    port: u16,
    username: Option<String>,
    password: Option<String>,
    db: i64,
    idle: Mutex<Vec<Connection>>,
}

/// One connection and the buffers its calls reuse.
pub(super) struct Connection {
    stream: TcpStream,
    /// The commands of the call being built.
    pub(super) out: Resp,
    input: Vec<u8>,
    /// A call started and has not gone through: closed with a reset if dropped so.
    in_call: bool,
}

impl Drop for Connection {
    fn drop(&mut self) {
        if self.in_call {
            // Best effort: a socket that cannot take the option is closed as usual.
            let _ = self.stream.set_zero_linger();
        }
    }
}

fn unavailable(what: impl std::fmt::Display) -> StateError {
    StateError::Unavailable(what.to_string())
}

impl Direct {
    /// Connections for `info`, if it names a plain TCP address (not TLS, not a Unix socket).
    pub(super) fn for_info(info: &redis::ConnectionInfo) -> Option<Self> {
        let redis::ConnectionAddr::Tcp(host, port) = info.addr() else {
            return None;
        };
        let settings = info.redis_settings();
        Some(Self {
            host: host.clone(),
            port: *port,
            username: settings.username().map(str::to_owned),
            password: settings.password().map(str::to_owned),
            db: settings.db(),
            idle: Mutex::new(Vec::new()),
        })
    }

    /// An idle connection still open, or a new one (authenticated, its database selected).
    pub(super) async fn take(&self) -> Result<Connection, StateError> {
        loop {
            let Some(c) = self.idle.lock().expect("idle connections").pop() else {
                break;
            };
            if c.still_open() {
                return Ok(c);
            }
        }
        let stream = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| unavailable(format!("{}:{}: {e}", self.host, self.port)))?;
        stream.set_nodelay(true).map_err(unavailable)?;
        let mut c = Connection {
            stream,
            out: Resp::default(),
            input: Vec::new(),
            in_call: false,
        };
        if let Some(password) = &self.password {
            let refused = match self.username.as_deref() {
                Some(user) => match c.auth(Some(user), password).await? {
                    // Redis before 6 knows no users: AUTH takes the password alone there (as
                    // redis-rs does on the same answer).
                    Some(e) if e.contains("wrong number of arguments") => {
                        c.auth(None, password).await?
                    }
                    other => other,
                },
                None => c.auth(None, password).await?,
            };
            if let Some(e) = refused {
                return Err(unavailable(format!("Redis refused the login: {e}")));
            }
        }
        if self.db != 0 {
            let db = self.db.to_string();
            c.out.command(2, 6 + db.len());
            c.out.arg(b"SELECT");
            c.out.arg(db.as_bytes());
            c.call(|_, reply| match reply {
                Reply::Error(e) => Err(unavailable(format!(
                    "Redis refused SELECT {db}: {}",
                    String::from_utf8_lossy(e)
                ))),
                _ => Ok(()),
            })
            .await?;
        }
        Ok(c)
    }

    /// Keeps `c` for the next call; only a connection whose call went through comes back.
    pub(super) fn give_back(&self, c: Connection) {
        let mut idle = self.idle.lock().expect("idle connections");
        if idle.len() < IDLE {
            idle.push(c);
        }
    }

    /// Drops the idle connections (after a call failed).
    pub(super) fn forget_idle(&self) {
        self.idle.lock().expect("idle connections").clear();
    }
}

impl Connection {
    /// `AUTH [user] password`: `None` when Redis took it, else its error's text.
    async fn auth(
        &mut self,
        user: Option<&str>,
        password: &str,
    ) -> Result<Option<String>, StateError> {
        self.out
            .command(2 + usize::from(user.is_some()), 4 + password.len());
        self.out.arg(b"AUTH");
        if let Some(user) = user {
            self.out.arg(user.as_bytes());
        }
        self.out.arg(password.as_bytes());
        let mut refused = None;
        self.call(|_, reply| {
            if let Reply::Error(e) = reply {
                refused = Some(String::from_utf8_lossy(e).into_owned());
            }
            Ok(())
        })
        .await?;
        Ok(refused)
    }

    /// Whether an idle connection is still open: nothing to read on it (Redis sends nothing
    /// unasked), neither an end nor an error.
    fn still_open(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(
            self.stream.try_read(&mut probe),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
        )
    }

    /// Sends the commands in `out`, reads their answers, and calls `each` with each in order
    /// (its index and what it was); the first error `each` returns ends the call. Then `out` is
    /// emptied for the next call. A connection whose call failed must be dropped.
    pub(super) async fn call(
        &mut self,
        mut each: impl FnMut(usize, Reply<'_>) -> Result<(), StateError>,
    ) -> Result<(), StateError> {
        let Connection {
            stream,
            out,
            input,
            in_call,
        } = self;
        *in_call = true;
        let expected = out.commands();
        input.clear();
        let (mut read, mut write) = stream.split();
        // Written while the answers are read: Redis answers as it goes, and a call's answers
        // (a batch's states) can outgrow the socket's buffers before its commands are all sent.
        let send = async {
            write
                .write_all(out.bytes())
                .await
                .map_err(|e| unavailable(format!("sending to Redis: {e}")))
        };
        let receive = async {
            let (mut at, mut answered) = (0, 0);
            while answered < expected {
                match skip_reply(&input[at..]) {
                    Ok(Some((len, reply))) => {
                        each(answered, reply)?;
                        at += len;
                        answered += 1;
                        continue;
                    }
                    Ok(None) => {}
                    Err(garbled) => {
                        return Err(unavailable(format!(
                            "Redis's answer could not be read: {}",
                            garbled.0
                        )))
                    }
                }
                if input.capacity() - input.len() < 16 * 1024 {
                    input.reserve(64 * 1024);
                }
                let read = read
                    .read_buf(input)
                    .await
                    .map_err(|e| unavailable(format!("reading from Redis: {e}")))?;
                if read == 0 {
                    return Err(unavailable("Redis closed the connection"));
                }
            }
            if at != input.len() {
                return Err(unavailable("Redis sent more answers than commands"));
            }
            Ok(())
        };
        tokio::try_join!(send, receive)?;
        out.clear();
        *in_call = false;
        Ok(())
    }
}
