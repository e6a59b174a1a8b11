//! A small, strict reader over a parsed TOML document.
//!
//! It collects *every* problem (with its dotted key and line) instead of stopping at the
//! first one, so `branchd check-config` can tell an operator everything that is wrong in
//! one go. Unknown keys are errors: a typo in a key must never silently fall back to a
//! default on a production box.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;

use toml_edit::{Item, TableLike, Value};

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path of the key, e.g. `devices[1].baud`.
    pub key: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong, lower-case, no full stop.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: `{}`: {}", self.key, self.message),
            None => write!(f, "`{}`: {}", self.key, self.message),
        }
    }
}

/// The source text and the problems found so far; shared by every [`Section`].
#[derive(Debug)]
pub struct Diagnostics<'s> {
    src: &'s str,
    problems: RefCell<Vec<Problem>>,
}

impl<'s> Diagnostics<'s> {
    /// Start collecting problems for `src`.
    pub fn new(src: &'s str) -> Self {
        Self {
            src,
            problems: RefCell::new(Vec::new()),
        }
    }

    /// Record a problem at a byte span of the source.
    pub fn report(&self, key: &str, span: Option<Range<usize>>, message: impl Into<String>) {
        let line = span.map(|s| line_of(self.src, s.start));
        self.problems.borrow_mut().push(Problem {
            key: key.to_string(),
            line,
            message: message.into(),
        });
    }

    /// All problems, in source order.
    pub fn into_problems(self) -> Vec<Problem> {
        let mut p = self.problems.into_inner();
        p.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
        p
    }

    /// Whether nothing was reported.
    pub fn is_clean(&self) -> bool {
        self.problems.borrow().is_empty()
    }
}

/// 1-based line number of a byte offset.
pub fn line_of(src: &str, offset: usize) -> usize {
    src.as_bytes()[..offset.min(src.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// A table of the document, read key by key.
pub struct Section<'a, 's> {
    path: String,
    table: &'a dyn TableLike,
    span: Option<Range<usize>>,
    diags: &'a Diagnostics<'s>,
    seen: BTreeSet<String>,
}

impl fmt::Debug for Section<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Section").field("path", &self.path).finish()
    }
}

impl<'a, 's> Section<'a, 's> {
    /// The root table of a document.
    pub fn root(table: &'a dyn TableLike, diags: &'a Diagnostics<'s>) -> Self {
        Self {
            path: String::new(),
            table,
            span: None,
            diags,
            seen: BTreeSet::new(),
        }
    }

    /// The dotted path of this table.
    pub fn path(&self) -> &str {
        &self.path
    }

    fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn item(&mut self, key: &str) -> Option<&'a Item> {
        self.seen.insert(key.to_string());
        self.table.get(key)
    }

    fn item_span(&self, key: &str) -> Option<Range<usize>> {
        let table = self.table;
        table
            .get(key)
            .and_then(|i| i.span())
            .or_else(|| table.key(key).and_then(|k| k.span()))
            .or_else(|| self.span.clone())
    }

    /// Whether the table has `key`.
    pub fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    /// Report a problem with `key` of this table.
    pub fn problem(&self, key: &str, message: impl Into<String>) {
        self.diags
            .report(&self.key_path(key), self.item_span(key), message);
    }

    /// Report a problem with the table itself.
    pub fn table_problem(&self, message: impl Into<String>) {
        self.diags.report(&self.path, self.span.clone(), message);
    }

    fn missing(&self, key: &str, what: &str) {
        self.diags.report(
            &self.key_path(key),
            self.span.clone(),
            format!("missing required key (expected {what})"),
        );
    }

    fn wrong_type(&self, key: &str, expected: &str, item: &Item) {
        self.problem(
            key,
            format!("expected {expected}, found {}", item.type_name()),
        );
    }

    /// An optional string.
    pub fn opt_str(&mut self, key: &str) -> Option<String> {
        let item = self.item(key)?;
        match item.as_str() {
            Some(s) => Some(s.to_string()),
            None => {
                self.wrong_type(key, "a string", item);
                None
            }
        }
    }

    /// A required, non-empty string.
    pub fn req_str(&mut self, key: &str) -> Option<String> {
        if self.table.get(key).is_none() {
            self.seen.insert(key.to_string());
            self.missing(key, "a string");
            return None;
        }
        let s = self.opt_str(key)?;
        if s.trim().is_empty() {
            self.problem(key, "must not be empty");
            return None;
        }
        Some(s)
    }

    /// An optional integer within `range`.
    pub fn opt_int(&mut self, key: &str, range: std::ops::RangeInclusive<i64>) -> Option<i64> {
        let item = self.item(key)?;
        self.in_range(key, item, item.as_integer(), "an integer", range)
    }

    /// An optional number (integer or float) within `range`.
    pub fn opt_float(&mut self, key: &str, range: std::ops::RangeInclusive<f64>) -> Option<f64> {
        let item = self.item(key)?;
        let v = item
            .as_float()
            .or_else(|| item.as_integer().map(|i| i as f64));
        self.in_range(key, item, v, "a number", range)
    }

    fn in_range<T: PartialOrd + fmt::Display>(
        &self,
        key: &str,
        item: &Item,
        value: Option<T>,
        expected: &str,
        range: std::ops::RangeInclusive<T>,
    ) -> Option<T> {
        match value {
            Some(v) if range.contains(&v) => Some(v),
            Some(v) => {
                self.problem(
                    key,
                    format!("{v} is out of range ({}..={})", range.start(), range.end()),
                );
                None
            }
            None => {
                self.wrong_type(key, expected, item);
                None
            }
        }
    }

    /// An optional boolean.
    pub fn opt_bool(&mut self, key: &str) -> Option<bool> {
        let item = self.item(key)?;
        match item.as_bool() {
            Some(b) => Some(b),
            None => {
                self.wrong_type(key, "true or false", item);
                None
            }
        }
    }

    /// An optional array of strings.
    pub fn opt_str_list(&mut self, key: &str) -> Option<Vec<String>> {
        let item = self.item(key)?;
        let Some(arr) = item.as_array() else {
            self.wrong_type(key, "an array of strings", item);
            return None;
        };
        let mut out = Vec::new();
        for (i, v) in arr.iter().enumerate() {
            match v.as_str() {
                Some(s) => out.push(s.to_string()),
                None => {
                    self.diags.report(
                        &format!("{}[{i}]", self.key_path(key)),
                        v.span(),
                        format!("expected a string, found {}", v.type_name()),
                    );
                    return None;
                }
            }
        }
        Some(out)
    }

    /// An optional string parsed by `parse`, whose error text is reported.
    pub fn opt_parsed<T>(
        &mut self,
        key: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let s = self.opt_str(key)?;
        match parse(&s) {
            Ok(v) => Some(v),
            Err(e) => {
                self.problem(key, e);
                None
            }
        }
    }

    /// An optional sub-table (`[a.b]` or an inline table).
    pub fn opt_table(&mut self, key: &str) -> Option<Section<'a, 's>> {
        let path = self.key_path(key);
        let item = self.item(key)?;
        match item.as_table_like() {
            Some(t) => Some(Section {
                path,
                table: t,
                span: item.span().or_else(|| self.span.clone()),
                diags: self.diags,
                seen: BTreeSet::new(),
            }),
            None => {
                self.wrong_type(key, "a table", item);
                None
            }
        }
    }

    /// A required sub-table.
    pub fn req_table(&mut self, key: &str) -> Option<Section<'a, 's>> {
        if self.table.get(key).is_none() {
            self.seen.insert(key.to_string());
            self.missing(key, "a table");
            return None;
        }
        self.opt_table(key)
    }

    /// An optional array of tables (`[[key]]`); empty when absent.
    pub fn tables(&mut self, key: &str) -> Vec<Section<'a, 's>> {
        let base = self.key_path(key);
        let Some(item) = self.item(key) else {
            return Vec::new();
        };
        let diags = self.diags;
        let make = |i: usize, t: &'a dyn TableLike, span: Option<Range<usize>>| Section {
            path: format!("{base}[{i}]"),
            table: t,
            span,
            diags,
            seen: BTreeSet::new(),
        };
        if let Some(aot) = item.as_array_of_tables() {
            return aot
                .iter()
                .enumerate()
                .map(|(i, t)| make(i, t as &dyn TableLike, t.span()))
                .collect();
        }
        if let Some(arr) = item.as_array() {
            let mut out = Vec::new();
            for (i, v) in arr.iter().enumerate() {
                match v {
                    Value::InlineTable(t) => out.push(make(i, t as &dyn TableLike, t.span())),
                    other => self.diags.report(
                        &format!("{base}[{i}]"),
                        other.span(),
                        format!("expected a table, found {}", other.type_name()),
                    ),
                }
            }
            return out;
        }
        self.wrong_type(key, "an array of tables", item);
        Vec::new()
    }

    /// Report every key of this table that was never asked for.
    pub fn finish(self) {
        for (key, item) in self.table.iter() {
            if !self.seen.contains(key) {
                let span = self
                    .table
                    .key(key)
                    .and_then(|k| k.span())
                    .or_else(|| item.span());
                self.diags
                    .report(&self.key_path(key), span, "unknown key".to_string());
            }
        }
    }
}
