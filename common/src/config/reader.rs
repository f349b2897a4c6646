//! Typed access to one TOML table, reporting unknown keys, missing keys and wrong types with positions.

use toml_edit::{Array, Item, TableLike, Value};

use super::diag::{closest, Diag, Span};

/// A value read from the config, with where it was written.
#[derive(Debug, Clone)]
pub(crate) struct Val<T> {
    pub v: T,
    pub span: Span,
}

/// One table of the config (`[gateway]`, a `[[meter]]`, an inline `production = {..}`), with the name
/// it is called by in messages.
#[derive(Clone)]
pub(crate) struct Section<'d> {
    table: &'d dyn TableLike,
    /// Where the table starts (its header, or the inline table).
    pub span: Span,
    /// How messages name it: `[gateway]`, `[[meter]] "main-power"`, `production`.
    pub what: String,
}

/// "a string", "an integer", ...: what the user wrote, for "expected X, found Y".
pub(crate) fn type_name(item: &Item) -> &'static str {
    match item {
        Item::None => "nothing",
        Item::Value(v) => value_type_name(v),
        Item::Table(_) => "a table",
        Item::ArrayOfTables(_) => "an array of tables",
    }
}

pub(crate) fn value_type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date-time",
        Value::Array(_) => "an array",
        Value::InlineTable(_) => "a table",
    }
}

impl<'d> Section<'d> {
    pub(crate) fn new(
        table: &'d dyn TableLike,
        span: Span,
        what: impl Into<String>,
    ) -> Section<'d> {
        Section {
            table,
            span,
            what: what.into(),
        }
    }

    /// Open `item` as a table (a `[table]` or an inline `{ .. }`), or report it as the wrong type.
    pub(crate) fn of_item(
        d: &mut Diag<'_>,
        item: &'d Item,
        key: &str,
        what: impl Into<String>,
    ) -> Option<Section<'d>> {
        match item.as_table_like() {
            Some(t) => Some(Section::new(t, item.span(), what)),
            None => {
                d.error(
                    &item.span(),
                    format!("expected a table for {key}, found {}", type_name(item)),
                );
                None
            }
        }
    }

    /// Report every key not in `allowed`, suggesting the closest allowed key or listing them all.
    pub(crate) fn check_keys(&self, d: &mut Diag<'_>, allowed: &[&str]) {
        for (key, _) in self.table.iter() {
            if allowed.contains(&key) {
                continue;
            }
            let hint = match closest(key, allowed.iter().copied()) {
                Some(c) => format!("did you mean \"{c}\"?"),
                None => format!("allowed keys: {}", allowed.join(", ")),
            };
            d.error(
                &self.key_span(key),
                format!("unknown key \"{key}\" in {}; {hint}", self.what),
            );
        }
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.table.get(key).is_some_and(|i| !i.is_none())
    }

    /// Where a key is written (falls back to the table).
    pub(crate) fn key_span(&self, key: &str) -> Span {
        self.table
            .key(key)
            .and_then(|k| k.span())
            .or_else(|| self.span.clone())
    }

    /// Where a key's value is written (falls back to the key, then the table).
    pub(crate) fn value_span(&self, key: &str) -> Span {
        self.table
            .get(key)
            .and_then(|i| i.span())
            .or_else(|| self.key_span(key))
    }

    /// Every key of the table with its value and where the key is written (tables whose keys are data:
    /// `[import] headers`).
    pub(crate) fn entries(&self) -> Vec<(&'d str, &'d Item, Span)> {
        self.table
            .iter()
            .map(|(k, v)| (k, v, self.key_span(k)))
            .collect()
    }

    pub(crate) fn item(&self, key: &str) -> Option<&'d Item> {
        self.table.get(key).filter(|i| !i.is_none())
    }

    pub(crate) fn missing(&self, d: &mut Diag<'_>, key: &str) {
        d.error(
            &self.span,
            format!("missing key \"{key}\" in {}", self.what),
        );
    }

    fn wrong(&self, d: &mut Diag<'_>, key: &str, expected: &str, item: &Item) {
        d.error(
            &self.value_span(key),
            format!("expected {expected} for {key}, found {}", type_name(item)),
        );
    }

    /// An optional string.
    pub(crate) fn str(&self, d: &mut Diag<'_>, key: &str) -> Option<Val<&'d str>> {
        let item = self.item(key)?;
        match item.as_str() {
            Some(s) => Some(Val {
                v: s,
                span: self.value_span(key),
            }),
            None => {
                self.wrong(d, key, "a string", item);
                None
            }
        }
    }

    /// A required name (`[a-z0-9_-]+`, the names of meters and points): the error says whose
    /// (`what`: "meter", "point").
    pub(crate) fn req_name(&self, d: &mut Diag<'_>, what: &str) -> Option<Val<&'d str>> {
        let n = self.req_str(d, "name")?;
        if super::meters::valid_name(n.v) {
            return Some(n);
        }
        d.error(
            &n.span,
            format!("{what} name \"{}\" may only contain a-z, 0-9, _ and -", n.v),
        );
        None
    }

    /// A required string.
    pub(crate) fn req_str(&self, d: &mut Diag<'_>, key: &str) -> Option<Val<&'d str>> {
        if !self.has(key) {
            self.missing(d, key);
            return None;
        }
        self.str(d, key)
    }

    /// An optional integer.
    pub(crate) fn int(&self, d: &mut Diag<'_>, key: &str) -> Option<Val<i64>> {
        let item = self.item(key)?;
        match item.as_integer() {
            Some(i) => Some(Val {
                v: i,
                span: self.value_span(key),
            }),
            None => {
                self.wrong(d, key, "an integer", item);
                None
            }
        }
    }

    /// An optional integer within `lo..=hi`.
    pub(crate) fn int_in(&self, d: &mut Diag<'_>, key: &str, lo: i64, hi: i64) -> Option<Val<i64>> {
        let v = self.int(d, key)?;
        if v.v < lo || v.v > hi {
            d.error(
                &v.span,
                format!("{key} {} is out of range {lo}..={hi}", v.v),
            );
            return None;
        }
        Some(v)
    }

    /// An optional number (integer or float), finite.
    pub(crate) fn number(&self, d: &mut Diag<'_>, key: &str) -> Option<Val<f64>> {
        let item = self.item(key)?;
        let span = self.value_span(key);
        let v = match (item.as_float(), item.as_integer()) {
            (Some(f), _) => f,
            // i64 -> f64 is exact for every value a config would hold.
            (None, Some(i)) => i as f64,
            (None, None) => {
                self.wrong(d, key, "a number", item);
                return None;
            }
        };
        if !v.is_finite() {
            d.error(&span, format!("{key} must be a finite number, found {v}"));
            return None;
        }
        Some(Val { v, span })
    }

    /// An optional number that must be > 0.
    pub(crate) fn positive(&self, d: &mut Diag<'_>, key: &str) -> Option<Val<f64>> {
        let v = self.number(d, key)?;
        if v.v <= 0.0 {
            d.error(&v.span, format!("{key} must be positive, found {}", v.v));
            return None;
        }
        Some(v)
    }

    /// An optional number that must be >= 0.
    pub(crate) fn non_negative(&self, d: &mut Diag<'_>, key: &str) -> Option<Val<f64>> {
        let v = self.number(d, key)?;
        if v.v < 0.0 {
            d.error(
                &v.span,
                format!("{key} must not be negative, found {}", v.v),
            );
            return None;
        }
        Some(v)
    }

    /// An optional array.
    pub(crate) fn array(&self, d: &mut Diag<'_>, key: &str) -> Option<Val<&'d Array>> {
        let item = self.item(key)?;
        match item.as_array() {
            Some(a) => Some(Val {
                v: a,
                span: self.value_span(key),
            }),
            None => {
                self.wrong(d, key, "an array", item);
                None
            }
        }
    }

    /// An optional sub-table (`[a.b]` or `b = { .. }`).
    pub(crate) fn table(
        &self,
        d: &mut Diag<'_>,
        key: &str,
        what: impl Into<String>,
    ) -> Option<Section<'d>> {
        let item = self.item(key)?;
        match item.as_table_like() {
            Some(t) => Some(Section::new(t, self.value_span(key), what)),
            None => {
                self.wrong(d, key, "a table", item);
                None
            }
        }
    }

    /// An optional array of tables (`[[a.b]]`, or `b = [{..}, {..}]`); empty when absent.
    pub(crate) fn tables(&self, d: &mut Diag<'_>, key: &str, what: &str) -> Vec<Section<'d>> {
        let Some(item) = self.item(key) else {
            return Vec::new();
        };
        if let Some(aot) = item.as_array_of_tables() {
            return aot
                .iter()
                .map(|t| Section::new(t, t.span().or_else(|| aot.span()), what))
                .collect();
        }
        if let Some(arr) = item.as_array() {
            let mut out = Vec::new();
            for v in arr.iter() {
                match v.as_inline_table() {
                    Some(t) => out.push(Section::new(t, v.span(), what)),
                    None => d.error(
                        &v.span(),
                        format!("expected a table in {key}, found {}", value_type_name(v)),
                    ),
                }
            }
            return out;
        }
        d.error(
            &self.value_span(key),
            format!(
                "expected an array of tables ([[{what_key}]]) for {key}, found {}",
                type_name(item),
                what_key = what.trim_matches(|c| c == '[' || c == ']'),
            ),
        );
        Vec::new()
    }
}
