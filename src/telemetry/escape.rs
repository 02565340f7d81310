//! Field formatting for the human log format that escapes control characters, so a value that
//! came from outside (a sign-in name, a rule key, a Kafka error) cannot start a line of its own
//! and forge a log record. The JSON format escapes by construction.

use std::fmt::Write;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::format::{self, Writer};
use tracing_subscriber::fmt::FormatFields;

/// `text` with every control character written as an escape (`\n`, `\r`, `\t`, `\u{..}`).
pub fn escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// The human format's fields, each value escaped: `message` alone, then `name=value` pairs.
pub fn fields() -> impl for<'w> FormatFields<'w> + Send + Sync + 'static {
    format::debug_fn(
        |w: &mut Writer<'_>, field: &tracing::field::Field, value: &dyn std::fmt::Debug| {
            let text = escaped(&format!("{value:?}"));
            if field.name() == "message" {
                w.write_str(&text)
            } else {
                write!(w, "{}={text}", field.name())
            }
        },
    )
    .delimited(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_newline_in_a_field_cannot_forge_a_log_line() {
        assert_eq!(escaped("a\u{1b}[31m"), "a\\u{1b}[31m");
        assert_eq!(escaped("plain é"), "plain é");
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .fmt_fields(fields())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let name = "ana\n2026-12-06T10:00:00Z  INFO console sign-in user=admin";
            tracing::warn!(user = %name, "console sign-in refused\r");
        });
        let out = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(out.contains("user=ana\\n2026-12-06"), "{out}");
        assert!(out.contains("refused\\r"), "{out}");
    }
}
