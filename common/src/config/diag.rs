//! Error collection with source positions: byte spans from `toml_edit` become `FILE:LINE:COL`.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One configuration error, located in its file (line and column are 1-based, columns in characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The config file (or `<template NAME>` for an error inside a built-in template).
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
    /// What is wrong, naming the key or value.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

impl std::error::Error for ConfigError {}

/// Every error found in a configuration file, in file order. Displayed one `FILE:LINE:COL: message` per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    /// Never empty when returned by `load` or `parse`.
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl ConfigErrors {
    /// A single error not tied to a position in the file (line 1, column 1), e.g. an unreadable file.
    pub fn whole_file(file: &Path, message: impl Into<String>) -> ConfigErrors {
        ConfigErrors {
            errors: vec![ConfigError {
                file: file.to_path_buf(),
                line: 1,
                col: 1,
                message: message.into(),
            }],
        }
    }
}

/// Longest echo of user input, in bytes, before [`cut_echo`] cuts its middle. Above the longest
/// message of our own (the list of `[audit]`'s allowed keys is about 450 bytes: cut at 400, the
/// list a user needs lost its middle).
pub const ECHO_MAX: usize = 1000;

/// `text` when at most [`ECHO_MAX`] bytes; else its first 600 and last 300 bytes (at character
/// boundaries) around a note of what was cut and the whole length: a 100 MB config value must not
/// become 100 MB of terminal output or journal, and the key before it and the reason after it stay.
pub fn cut_echo(text: &str) -> std::borrow::Cow<'_, str> {
    if text.len() <= ECHO_MAX {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut head = 600;
    while !text.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = text.len() - 300;
    while !text.is_char_boundary(tail) {
        tail += 1;
    }
    std::borrow::Cow::Owned(format!(
        "{}[... {} bytes cut; {} bytes in all ...]{}",
        &text[..head],
        tail - head,
        text.len(),
        &text[tail..]
    ))
}

/// A byte range into the text being validated; None when the parser kept no position (implicit tables).
pub type Span = Option<Range<usize>>;

/// Collects errors for one source text (the config file, or a built-in template). The one error
/// reporter of the workspace: the agent's config, the park's (through serde's spans) and the simulator's
/// scenario all say `FILE:LINE:COL: message` through it.
pub struct Diag<'t> {
    file: PathBuf,
    text: &'t str,
    /// Byte offset of the start of every line.
    line_starts: Vec<usize>,
    /// The errors so far, in the order found ([`Diag::finish`] sorts them).
    pub errors: Vec<ConfigError>,
}

impl<'t> Diag<'t> {
    /// An empty collection for `text`, read from `file`.
    pub fn new(file: &Path, text: &'t str) -> Diag<'t> {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Diag {
            file: file.to_path_buf(),
            text,
            line_starts,
            errors: Vec::new(),
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub(crate) fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let start = self.line_starts[line - 1];
        let col = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count())
            + 1;
        (line, col)
    }

    /// Record an error at a span (line 1, column 1 when the span is unknown). A message that echoes a
    /// huge value is cut ([`cut_echo`]).
    pub fn error(&mut self, span: &Span, message: impl Into<String>) {
        let (line, col) = span.as_ref().map_or((1, 1), |r| self.position(r.start));
        let message = message.into();
        let message = match cut_echo(&message) {
            std::borrow::Cow::Borrowed(_) => message,
            std::borrow::Cow::Owned(cut) => cut,
        };
        self.errors.push(ConfigError {
            file: self.file.clone(),
            line,
            col,
            message,
        });
    }

    /// Record an error at a known byte range (a serde `Spanned` value's span).
    pub fn at(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.error(&Some(span), message);
    }

    /// The errors so far, in reading order.
    pub fn into_errors(self) -> ConfigErrors {
        into_sorted(self.errors)
    }

    pub(crate) fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    pub(crate) fn count(&self) -> usize {
        self.errors.len()
    }
}

/// Sort errors into reading order (by file as first seen, then line and column) and drop exact repeats.
pub(crate) fn into_sorted(mut errors: Vec<ConfigError>) -> ConfigErrors {
    let mut files: Vec<PathBuf> = Vec::new();
    for e in &errors {
        if !files.contains(&e.file) {
            files.push(e.file.clone());
        }
    }
    errors.sort_by_key(|e| {
        (
            files
                .iter()
                .position(|f| *f == e.file)
                .unwrap_or(usize::MAX),
            e.line,
            e.col,
        )
    });
    errors.dedup();
    ConfigErrors { errors }
}

/// Edit distance counting a swap of two neighbouring characters as one edit (optimal string
/// alignment), for "did you mean" suggestions.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut m = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        m[i * w] = i;
    }
    for (j, cell) in m.iter_mut().enumerate().take(w) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (m[(i - 1) * w + j - 1] + cost)
                .min(m[(i - 1) * w + j] + 1)
                .min(m[i * w + j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(m[(i - 2) * w + j - 2] + 1);
            }
            m[i * w + j] = v;
        }
    }
    m[a.len() * w + b.len()]
}

/// The candidate closest to `word`, if it is close enough to be a plausible typo.
pub(crate) fn closest<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let limit = (word.chars().count() / 3).clamp(1, 3);
    candidates
        .into_iter()
        .map(|c| (edit_distance(&word.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `"a", "b" and "c"`-style lists for messages.
pub(crate) fn quoted_list<'c>(items: impl IntoIterator<Item = &'c str>) -> String {
    items
        .into_iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let d = Diag::new(Path::new("f"), "ab\n温度 = 1\n");
        assert_eq!(d.position(0), (1, 1));
        assert_eq!(d.position(3), (2, 1));
        // "温度 " is 7 bytes, 3 characters
        assert_eq!(d.position(3 + 7), (2, 4));
    }

    #[test]
    fn closest_suggests_typos_only() {
        assert_eq!(closest("adress", ["address", "name"]), Some("address"));
        assert_eq!(closest("zzzzzz", ["address", "name"]), None);
        assert_eq!(closest("cdo", ["cod", "flow"]), Some("cod"));
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod echo_tests {
    use super::*;

    #[test]
    fn a_huge_echo_is_cut_with_its_length_said_and_a_short_one_is_kept() {
        assert_eq!(
            cut_echo("gateway.id \"a b\": bad"),
            "gateway.id \"a b\": bad"
        );
        let huge = format!("site \"{}\" must be short", "é".repeat(5_000_000));
        let cut = cut_echo(&huge);
        assert!(cut.len() <= ECHO_MAX + 80, "{}", cut.len());
        assert!(cut.starts_with("site \"é"), "{cut}");
        assert!(cut.ends_with("é\" must be short"), "{cut}");
        assert!(
            cut.contains(&format!("{} bytes in all", huge.len())),
            "{cut}"
        );
    }
}
