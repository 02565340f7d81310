//! The Prometheus text format (version 0.0.4, what `/metrics` serves), read as samples:
//! `name{label="value",...} value [timestamp]`. `# HELP` and `# TYPE` lines and other comments
//! are skipped: the health page knows which metrics it reads and what they are. A line that is
//! not a sample is an error naming the line, since the body comes from another process.

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name, with a histogram's `_bucket`, `_sum` or `_count` suffix.
    pub name: String,
    /// Label pairs in the order written, values unescaped.
    pub labels: Vec<(String, String)>,
    /// The value (`+Inf`, `-Inf` and `NaN` included); a timestamp after it is dropped.
    pub value: f64,
}

impl Sample {
    /// The value of label `name`, if the sample has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A line that is not a sample.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("metrics line {line}: {reason}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What was expected there.
    pub reason: &'static str,
}

/// Every sample of `text`, in order.
pub fn parse(text: &str) -> Result<Vec<Sample>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        out.push(sample(line).map_err(|reason| ParseError {
            line: i + 1,
            reason,
        })?);
    }
    Ok(out)
}

fn sample(line: &str) -> Result<Sample, &'static str> {
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err("expected a metric name");
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        rest = label_pairs(inner, &mut labels)?;
    }
    let mut fields = rest.split_ascii_whitespace();
    let value = fields.next().ok_or("expected a value")?;
    let value = number(value).ok_or("the value is not a number")?;
    if let Some(timestamp) = fields.next() {
        timestamp
            .parse::<i64>()
            .map_err(|_| "the timestamp is not an integer")?;
    }
    if fields.next().is_some() {
        return Err("unexpected text after the value and timestamp");
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// Reads `name="value",...}` into `labels`; returns what follows the closing brace.
fn label_pairs<'a>(
    mut rest: &'a str,
    labels: &mut Vec<(String, String)>,
) -> Result<&'a str, &'static str> {
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix('}') {
            return Ok(after);
        }
        let eq = rest.find('=').ok_or("expected label=\"value\"")?;
        let name = rest[..eq].trim();
        if name.is_empty()
            || name.starts_with(|c: char| c.is_ascii_digit())
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err("expected a label name");
        }
        let quoted = rest[eq + 1..]
            .trim_start()
            .strip_prefix('"')
            .ok_or("expected a quoted label value")?;
        let (value, after) = label_value(quoted)?;
        labels.push((name.to_string(), value));
        rest = after.trim_start();
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err("expected ',' or '}' after a label");
        }
    }
}

/// Unescapes a label value (`\\`, `\"`, `\n`) up to its closing quote; returns it and what
/// follows the quote.
fn label_value(text: &str) -> Result<(String, &str), &'static str> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &text[i + 1..])),
            '\\' => match chars.next() {
                Some((_, 'n')) => value.push('\n'),
                Some((_, c @ ('\\' | '"'))) => value.push(c),
                _ => return Err("a label value has an unknown escape"),
            },
            c => value.push(c),
        }
    }
    Err("a label value has no closing quote")
}

/// A sample value: a float, `+Inf`, `-Inf` or `NaN`.
fn number(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        // Rust also reads "inf" and "infinity"; the format has only the spellings above.
        t if t
            .chars()
            .any(|c| c.is_ascii_alphabetic() && c != 'e' && c != 'E') =>
        {
            None
        }
        t => t.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_with_labels_escapes_special_values_and_timestamps() {
        let text = "# HELP x_total Things.\n# TYPE x_total counter\n\
                    x_total 3\n\
                    y_bucket{le=\"0.001\"} 0\n\
                    y_bucket{le=\"+Inf\",} 7 1700000000000\n\
                    z{a=\"q\\\"uote\", b = \"back\\\\slash\\nline\"} -1.5e-3\n\
                    \n  w:rate NaN\n";
        let s = parse(text).unwrap();
        assert_eq!(s.len(), 5);
        assert_eq!((s[0].name.as_str(), s[0].value), ("x_total", 3.0));
        assert!(s[0].labels.is_empty());
        assert_eq!(s[1].label("le"), Some("0.001"));
        assert_eq!(s[2].label("le"), Some("+Inf"));
        assert_eq!(s[2].value, 7.0);
        assert_eq!(s[3].label("a"), Some("q\"uote"));
        assert_eq!(s[3].label("b"), Some("back\\slash\nline"));
        assert_eq!(s[3].value, -0.0015);
        assert_eq!(s[4].name, "w:rate");
        assert!(s[4].value.is_nan());
    }

    #[test]
    fn a_line_that_is_not_a_sample_is_named() {
        for (text, reason) in [
            ("ok 1\n{a=\"b\"} 1", "expected a metric name"),
            ("ok 1\nx{a=\"b} 1", "a label value has no closing quote"),
            ("ok 1\nx{a=b} 1", "expected a quoted label value"),
            (
                "ok 1\nx{a=\"b\" c=\"d\"} 1",
                "expected ',' or '}' after a label",
            ),
            (
                "ok 1\nx{a=\"\\t\"} 1",
                "a label value has an unknown escape",
            ),
            ("ok 1\nx", "expected a value"),
            ("ok 1\nx one", "the value is not a number"),
            ("ok 1\nx inf", "the value is not a number"),
            ("ok 1\nx 1 soon", "the timestamp is not an integer"),
            (
                "ok 1\nx 1 2 3",
                "unexpected text after the value and timestamp",
            ),
        ] {
            assert_eq!(parse(text), Err(ParseError { line: 2, reason }), "{text}");
        }
    }

    #[test]
    fn reads_what_the_instances_serve() {
        let m = crate::telemetry::metrics();
        m.processing_latency.observe(0.003);
        m.events_consumed.with_label_values(&["bank.t.v1"]).inc();
        let samples = parse(&crate::telemetry::metrics::render()).unwrap();
        let buckets: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.name == "nbo_processing_latency_seconds_bucket")
            .collect();
        assert_eq!(buckets.len(), 36, "35 bounds from 1 ms, and +Inf");
        assert_eq!(buckets[0].label("le"), Some("0.001"));
        assert_eq!(buckets[35].label("le"), Some("+Inf"));
        assert!(buckets[35].value >= 1.0);
        assert!(samples.iter().any(
            |s| s.name == "nbo_events_consumed_total" && s.label("topic") == Some("bank.t.v1")
        ));
    }
}
