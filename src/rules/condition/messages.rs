//! Compile-time messages: where an error is (line and column) and what to suggest.

use crate::features::FeatureSet;

/// A string literal compared with an enum must be one of its symbols.
pub(crate) fn check_symbol(symbols: &[&str], s: &str) -> Result<(), String> {
    if symbols.contains(&s) {
        Ok(())
    } else {
        Err(format!(
            "'{s}' is not a valid symbol here; valid: {}",
            symbols.join(", ")
        ))
    }
}

/// The function or operator as written, for messages (`_+_` is `+`).
pub(crate) fn display_name(name: &str) -> &str {
    name.trim_matches('_').trim_start_matches('@')
}

/// The message for an unknown feature, with the nearest names.
pub(crate) fn unknown_feature(features: &FeatureSet, name: &str) -> String {
    let mut near: Vec<(usize, &str)> = features
        .defs()
        .iter()
        .map(|d| (edit_distance(name, &d.name), &*d.name))
        .filter(|(d, n)| *d <= 3.max(name.len() / 3) || n.contains(name) || name.contains(n))
        .collect();
    near.sort();
    let near: Vec<&str> = near.into_iter().take(3).map(|(_, n)| n).collect();
    if near.is_empty() {
        format!("unknown feature `{name}`")
    } else {
        format!(
            "unknown feature `{name}`; did you mean {}?",
            near.join(", ")
        )
    }
}

/// Levenshtein distance over bytes.
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// 1-based line and column (in characters) of the byte `offset` the parser reports.
pub(crate) fn line_column(source: &str, offset: u32) -> (usize, usize) {
    let (mut line, mut column) = (1, 1);
    for (at, c) in source.char_indices() {
        if at >= offset as usize {
            break;
        }
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    (line, column)
}
