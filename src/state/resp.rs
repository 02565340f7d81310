//! Redis commands written as RESP straight into one buffer, and the answers read back without
//! building values for the ones nobody looks at.
//!
//! A checkpoint writes thousands of customers, three or four commands each. Built as
//! `redis::Cmd`s, every command is two allocations, its arguments are copied in, then copied
//! again into the pipeline's packed bytes, and every `+QUEUED` and `:1` is parsed into a value
//! that is thrown away. [`Resp`] writes the same bytes once into a buffer that is reused from one
//! call to the next, and [`skip_reply`] walks an answer to find where it ends and whether it is
//! an error. The commands are written through [`Commands`], so a Redis Cluster (which needs
//! `redis::Cmd`s to route them) gets the very same commands from [`PipelineCommands`].

/// Where a command's arguments go, one after the other: `command(argc, size)` starts a command
/// of `argc` arguments (about `size` bytes in all, a hint), then `arg` is called `argc` times.
pub trait Commands {
    /// Starts a command of `argc` arguments, about `size` bytes of them.
    fn command(&mut self, argc: usize, size: usize);
    /// The next argument of the command started last.
    fn arg(&mut self, arg: &[u8]);
}

/// Commands as RESP in one buffer, with the count of answers they will get (one each, whatever
/// the command: inside MULTI/EXEC each queued command is answered `+QUEUED`, and EXEC's answer
/// is one array).
#[derive(Debug, Default)]
pub struct Resp {
    buf: Vec<u8>,
    commands: usize,
    args_left: usize,
}

impl Resp {
    /// The bytes written so far.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Commands written so far (answers to expect).
    pub fn commands(&self) -> usize {
        self.commands
    }

    /// Empties the buffer, keeping its capacity.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.commands = 0;
        self.args_left = 0;
    }

    /// A command with no arguments past its name (`MULTI`, `EXEC`).
    pub fn word(&mut self, name: &str) {
        self.command(1, name.len());
        self.arg(name.as_bytes());
    }

    fn length(&mut self, tag: u8, n: usize) {
        self.buf.push(tag);
        self.buf
            .extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }
}

impl Commands for Resp {
    fn command(&mut self, argc: usize, size: usize) {
        debug_assert_eq!(self.args_left, 0, "the command before is missing arguments");
        self.buf.reserve(size + 8 * argc + 8);
        self.length(b'*', argc);
        self.commands += 1;
        self.args_left = argc;
    }

    fn arg(&mut self, arg: &[u8]) {
        debug_assert!(self.args_left > 0, "more arguments than the command has");
        self.args_left -= 1;
        self.length(b'$', arg.len());
        self.buf.extend_from_slice(arg);
        self.buf.extend_from_slice(b"\r\n");
    }
}

/// Commands added to a `redis::Pipeline`, each with its answer ignored (for Redis Cluster and
/// TLS connections, which go through redis-rs).
pub struct PipelineCommands<'a> {
    pipe: &'a mut redis::Pipeline,
    cmd: Option<redis::Cmd>,
    args_left: usize,
}

impl<'a> PipelineCommands<'a> {
    /// Commands to add to `pipe`.
    pub fn new(pipe: &'a mut redis::Pipeline) -> Self {
        Self {
            pipe,
            cmd: None,
            args_left: 0,
        }
    }
}

impl Commands for PipelineCommands<'_> {
    fn command(&mut self, argc: usize, size: usize) {
        debug_assert_eq!(self.args_left, 0, "the command before is missing arguments");
        self.cmd = Some(redis::Cmd::with_capacity(argc, size));
        self.args_left = argc;
    }

    fn arg(&mut self, arg: &[u8]) {
        let cmd = self.cmd.as_mut().expect("an argument outside a command");
        cmd.arg(arg);
        self.args_left -= 1;
        if self.args_left == 0 {
            let cmd = self.cmd.take().expect("the command being built");
            self.pipe.add_command(cmd).ignore();
        }
    }
}

/// What a complete answer was.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply<'a> {
    /// A status, an integer, or an array without errors.
    Done,
    /// A nil: a nil bulk string (`GET` of no key) or a nil array (an aborted `EXEC`).
    Nil,
    /// A bulk string.
    Bulk(&'a [u8]),
    /// An error, or an array with one (its first error's text).
    Error(&'a [u8]),
}

/// An answer Redis could not have sent (the connection is out of step: drop it).
#[derive(Debug, PartialEq, Eq)]
pub struct Garbled(pub String);

/// The longest bulk string Redis sends (its `proto-max-bulk-len` at most).
const MAX_BULK: i64 = 512 << 20;

/// The answer at the start of `input`: `Ok(None)` while it is incomplete, else how many bytes it
/// takes and what it was. Reads RESP2 (and RESP3's null, double and boolean, which RESP2 never
/// sends), nesting up to 8 arrays deep.
pub fn skip_reply(input: &[u8]) -> Result<Option<(usize, Reply<'_>)>, Garbled> {
    skip_at(input, 0, 0)
}

fn skip_at(input: &[u8], at: usize, depth: usize) -> Result<Option<(usize, Reply<'_>)>, Garbled> {
    let Some((line, next)) = line_at(input, at)? else {
        return Ok(None);
    };
    let Some((&tag, body)) = line.split_first() else {
        return Err(Garbled("an empty line".into()));
    };
    match tag {
        b'+' | b':' | b',' | b'#' => Ok(Some((next, Reply::Done))),
        b'_' => Ok(Some((next, Reply::Nil))),
        b'-' => Ok(Some((next, Reply::Error(body)))),
        b'$' => {
            let n = number(body)?;
            if n < 0 {
                return Ok(Some((next, Reply::Nil)));
            }
            if n > MAX_BULK {
                return Err(Garbled(format!("a bulk string of {n} bytes")));
            }
            let end = next + n as usize;
            if input.len() < end + 2 {
                return Ok(None);
            }
            if &input[end..end + 2] != b"\r\n" {
                return Err(Garbled("a bulk string without its CRLF".into()));
            }
            Ok(Some((end + 2, Reply::Bulk(&input[next..end]))))
        }
        b'*' => {
            if depth >= 8 {
                return Err(Garbled("arrays nested past 8".into()));
            }
            let n = number(body)?;
            if n < 0 {
                return Ok(Some((next, Reply::Nil)));
            }
            let mut at = next;
            let mut first_error = None;
            for _ in 0..n {
                match skip_at(input, at, depth + 1)? {
                    None => return Ok(None),
                    Some((end, reply)) => {
                        if let (None, Reply::Error(e)) = (&first_error, reply) {
                            first_error = Some(e);
                        }
                        at = end;
                    }
                }
            }
            Ok(Some((at, first_error.map_or(Reply::Done, Reply::Error))))
        }
        other => Err(Garbled(format!(
            "an answer of type {:?}",
            char::from(other)
        ))),
    }
}

/// The line at `at` (without its CRLF) and where the next begins, if it is complete.
fn line_at(input: &[u8], at: usize) -> Result<Option<(&[u8], usize)>, Garbled> {
    let Some(rest) = input.get(at..) else {
        return Ok(None);
    };
    // A line's text never holds CR (an error's message is one line), so its first CR ends it.
    let Some(cr) = memchr::memchr(b'\r', rest) else {
        return Ok(None);
    };
    match rest.get(cr + 1) {
        None => Ok(None),
        Some(b'\n') => Ok(Some((&rest[..cr], at + cr + 2))),
        Some(_) => Err(Garbled("a CR without LF".into())),
    }
}

fn number(text: &[u8]) -> Result<i64, Garbled> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| {
            Garbled(format!(
                "{:?} is not a length",
                String::from_utf8_lossy(text)
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_the_bytes_redis_rs_packs() {
        let mut resp = Resp::default();
        let mut pipe = redis::pipe();
        let mut through_pipe = PipelineCommands::new(&mut pipe);
        for out in [&mut resp as &mut dyn Commands, &mut through_pipe] {
            out.command(3, 10);
            out.arg(b"SET");
            out.arg(b"k");
            out.arg(b"a\r\nb");
            out.command(2, 0);
            out.arg(b"GET");
            out.arg(b"");
        }
        assert_eq!(resp.commands(), 2);
        assert_eq!(resp.bytes(), &pipe.get_packed_pipeline()[..]);
        assert_eq!(
            resp.bytes(),
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na\r\nb\r\n*2\r\n$3\r\nGET\r\n$0\r\n\r\n"
        );
        resp.clear();
        resp.word("MULTI");
        assert_eq!(resp.bytes(), b"*1\r\n$5\r\nMULTI\r\n");
        assert_eq!(resp.commands(), 1);
    }

    #[test]
    fn answers_are_skipped_whole_and_errors_found_inside_arrays() {
        let input = b"+OK\r\n+QUEUED\r\n*3\r\n:1\r\n+OK\r\n$-1\r\n$5\r\nhe\r\no\r\n";
        assert_eq!(skip_reply(b"$-1\r\n").unwrap().unwrap(), (5, Reply::Nil));
        let (n, r) = skip_reply(input).unwrap().unwrap();
        assert_eq!((n, r), (5, Reply::Done));
        let (m, _) = skip_reply(&input[n..]).unwrap().unwrap();
        let (k, r) = skip_reply(&input[n + m..]).unwrap().unwrap();
        assert_eq!(r, Reply::Done);
        let at = n + m + k;
        assert_eq!(
            skip_reply(&input[at..]).unwrap().unwrap(),
            (11, Reply::Bulk(&b"he\r\no"[..]))
        );
        assert_eq!(at + 11, input.len());

        let exec = b"*2\r\n:1\r\n-WRONGTYPE Operation against a key\r\n";
        assert_eq!(
            skip_reply(exec).unwrap().unwrap(),
            (
                exec.len(),
                Reply::Error(&b"WRONGTYPE Operation against a key"[..])
            )
        );
        assert_eq!(skip_reply(b"*-1\r\n").unwrap().unwrap(), (5, Reply::Nil));
    }

    #[test]
    fn an_incomplete_answer_waits_and_a_garbled_one_is_refused() {
        let whole = b"*2\r\n$3\r\nabc\r\n:7\r\n";
        for cut in 0..whole.len() {
            assert_eq!(skip_reply(&whole[..cut]), Ok(None), "cut at {cut}");
        }
        assert!(skip_reply(whole).unwrap().is_some());
        assert!(skip_reply(b"?what\r\n").is_err());
        assert!(skip_reply(b"$3\r\nabcde\r\n").is_err());
        assert!(skip_reply(b"$x\r\n").is_err());
        assert!(skip_reply(b"\r\n").is_err());
        assert!(skip_reply(b"+OK\rX\n").is_err());
    }
}
