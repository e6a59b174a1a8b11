//! The strict reader of a head-office command's `data`, shared by every module that owns a
//! command kind: each problem is collected with the key it concerns, unknown keys are
//! refused, and nothing is applied unless the whole command is valid.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value};

pub use crate::config::orders::is_key;

/// Reads the keys of one command's `data`.
#[derive(Debug)]
pub struct Fields<'a> {
    data: &'a Map<String, Value>,
    used: Vec<&'static str>,
    problems: Vec<String>,
}

impl<'a> Fields<'a> {
    /// A reader of `data`.
    pub fn new(data: &'a Map<String, Value>) -> Self {
        Fields {
            data,
            used: Vec::new(),
            problems: Vec::new(),
        }
    }

    /// The value of `key` (null counts as absent); the key is known from now on.
    pub fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.used.push(key);
        self.data.get(key).filter(|v| !v.is_null())
    }

    /// Whether `key` was given (and is not null).
    pub fn has(&self, key: &str) -> bool {
        self.data.get(key).is_some_and(|v| !v.is_null())
    }

    /// Note a problem.
    pub fn problem(&mut self, message: impl Into<String>) {
        self.problems.push(message.into());
    }

    /// Note several problems.
    pub fn problems(&mut self, messages: Vec<String>) {
        self.problems.extend(messages);
    }

    /// Whether a problem has been noted.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    /// How many keys `data` has.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether `data` is empty.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// A required key.
    fn required(&mut self, key: &'static str) -> Option<&'a Value> {
        let v = self.get(key);
        if v.is_none() {
            self.problem(format!("`{key}` is required"));
        }
        v
    }

    /// An optional non-empty string of at most `max` characters.
    pub fn opt_string(&mut self, key: &'static str, max: usize) -> Option<String> {
        let v = self.get(key);
        text(v, key, max, &mut self.problems)
    }

    /// A required non-empty string of at most `max` characters.
    pub fn string(&mut self, key: &'static str, max: usize) -> Option<String> {
        let v = self.required(key)?;
        text(Some(v), key, max, &mut self.problems)
    }

    /// A required boolean.
    pub fn bool(&mut self, key: &'static str) -> Option<bool> {
        match self.required(key)? {
            Value::Bool(b) => Some(*b),
            _ => {
                self.problem(format!("`{key}` must be true or false"));
                None
            }
        }
    }

    /// A required id: 1–64 letters, digits, `-` or `_`.
    pub fn id(&mut self, key: &'static str) -> Option<String> {
        match self.required(key)? {
            Value::String(s) if is_code(s) => Some(s.clone()),
            _ => {
                self.problem(format!("`{key}` must be 1–64 letters, digits, '-' or '_'"));
                None
            }
        }
    }

    /// A required key name: lower-case letters, digits or `_`, at most 64.
    pub fn key(&mut self, key: &'static str) -> Option<String> {
        match self.required(key)? {
            Value::String(s) if is_key(s) => Some(s.clone()),
            _ => {
                self.problem(format!(
                    "`{key}` must be lower-case letters, digits or '_' (at most 64)"
                ));
                None
            }
        }
    }

    /// An optional RFC 3339 time.
    pub fn opt_time(&mut self, key: &'static str) -> Option<DateTime<Utc>> {
        match self.get(key)? {
            Value::String(s) => {
                let t = crate::clock::parse(s);
                if t.is_none() {
                    self.problem(format!(
                        "`{key}` must be an RFC 3339 time, e.g. 2026-11-23T09:30:00+08:00"
                    ));
                }
                t
            }
            _ => {
                self.problem(format!("`{key}` must be an RFC 3339 time string"));
                None
            }
        }
    }

    /// An optional integer in `min..=max`.
    pub fn opt_int(&mut self, key: &'static str, min: i64, max: i64) -> Option<i64> {
        let v = self.get(key)?;
        match v.as_i64() {
            Some(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.problem(format!("`{key}` must be an integer {min}–{max}"));
                None
            }
        }
    }

    /// A required integer in `min..=max`.
    pub fn int(&mut self, key: &'static str, min: i64, max: i64) -> Option<i64> {
        if !self.has(key) {
            self.used.push(key);
            self.problem(format!("`{key}` is required"));
            return None;
        }
        self.opt_int(key, min, max)
    }

    /// An optional calendar date, `YYYY-MM-DD`.
    pub fn opt_date(&mut self, key: &'static str) -> Option<NaiveDate> {
        let v = self.get(key)?;
        let d = v
            .as_str()
            .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok());
        if d.is_none() {
            self.problem(format!("`{key}` must be a date, YYYY-MM-DD"));
        }
        d
    }

    /// A required value out of `choices`.
    pub fn one_of(&mut self, key: &'static str, choices: &[&str]) -> Option<String> {
        if !self.has(key) {
            self.used.push(key);
            self.problem(format!("`{key}` is required"));
            return None;
        }
        self.opt_one_of(key, choices)
    }

    /// An optional value out of `choices`.
    pub fn opt_one_of(&mut self, key: &'static str, choices: &[&str]) -> Option<String> {
        let v = self.get(key)?;
        match v.as_str() {
            Some(s) if choices.contains(&s) => Some(s.to_string()),
            _ => {
                self.problem(format!("`{key}` must be one of {}", choices.join(", ")));
                None
            }
        }
    }

    /// An optional object of at most `max` entries.
    pub fn opt_object(&mut self, key: &'static str, max: usize) -> Option<Map<String, Value>> {
        match self.get(key)? {
            Value::Object(m) if m.len() <= max => Some(m.clone()),
            _ => {
                self.problem(format!(
                    "`{key}` must be an object of at most {max} entries"
                ));
                None
            }
        }
    }

    /// An optional list of at most `max_n` non-empty strings of at most `max_len`.
    pub fn opt_strings(
        &mut self,
        key: &'static str,
        max_n: usize,
        max_len: usize,
    ) -> Option<Vec<String>> {
        let v = self.get(key)?;
        let ok = v.as_array().filter(|a| a.len() <= max_n).and_then(|a| {
            a.iter()
                .map(|x| {
                    x.as_str()
                        .filter(|s| !s.is_empty() && s.chars().count() <= max_len)
                        .map(String::from)
                })
                .collect::<Option<Vec<_>>>()
        });
        if ok.is_none() {
            self.problem(format!(
                "`{key}` must be a list of at most {max_n} non-empty strings of at most {max_len} characters"
            ));
        }
        ok
    }

    /// An optional list of `min_n` to `max_n` finite numbers.
    pub fn opt_floats(
        &mut self,
        key: &'static str,
        min_n: usize,
        max_n: usize,
    ) -> Option<Vec<f32>> {
        let v = self.get(key)?;
        let ok = v
            .as_array()
            .filter(|a| (min_n..=max_n).contains(&a.len()))
            .and_then(|a| {
                a.iter()
                    // Finite as f32: a number beyond f32's range would become infinite.
                    .map(|x| x.as_f64().map(|f| f as f32).filter(|f| f.is_finite()))
                    .collect::<Option<Vec<_>>>()
            });
        if ok.is_none() {
            self.problem(format!(
                "`{key}` must be a list of {min_n}–{max_n} finite numbers"
            ));
        }
        ok
    }

    /// Done: every problem, unknown keys included, in one message; `Ok` when there is none.
    pub fn finish(mut self) -> Result<(), String> {
        for k in self.data.keys() {
            if !self.used.contains(&k.as_str()) {
                self.problems.push(format!("unknown key `{k}`"));
            }
        }
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(self.problems.join("; "))
        }
    }
}

/// Whether `s` is an id or code: 1–64 letters, digits, `-` or `_`.
pub fn is_code(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A non-empty string of at most `max` characters, or a problem naming `key`.
pub fn text(
    v: Option<&Value>,
    key: &str,
    max: usize,
    problems: &mut Vec<String>,
) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() && s.chars().count() <= max => Some(s.clone()),
        _ => {
            problems.push(format!(
                "`{key}` must be a non-empty string of at most {max} characters"
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(data: Value, f: impl FnOnce(&mut Fields<'_>)) -> Result<(), String> {
        let map = data.as_object().cloned().unwrap_or_default();
        let mut fields = Fields::new(&map);
        f(&mut fields);
        fields.finish()
    }

    #[test]
    fn floats_beyond_f32_are_refused() {
        let floats = |v: Value| {
            let map = json!({ "v": v }).as_object().cloned().unwrap_or_default();
            let mut fields = Fields::new(&map);
            let got = fields.opt_floats("v", 1, 4);
            (got, fields.finish())
        };
        assert_eq!(floats(json!([1.5, -2])), (Some(vec![1.5, -2.0]), Ok(())));
        for too_big in [json!([1e39]), json!([0.5, -1e300]), json!([f64::MAX])] {
            let (got, done) = floats(too_big.clone());
            assert_eq!(got, None, "{too_big}");
            assert_eq!(
                done.expect_err("refused"),
                "`v` must be a list of 1–4 finite numbers"
            );
        }
    }

    #[test]
    fn required_integers_and_choices_are_named_when_missing() {
        let got = read(json!({}), |f| {
            f.int("n", 0, 10);
            f.one_of("color", &["blue"]);
        })
        .expect_err("refused");
        assert_eq!(got, "`n` is required; `color` is required");
        assert_eq!(
            read(json!({"n": 3, "color": "blue", "day": "2026-11-23"}), |f| {
                assert_eq!(f.int("n", 0, 10), Some(3));
                assert_eq!(f.one_of("color", &["blue"]).as_deref(), Some("blue"));
                assert_eq!(f.opt_date("day"), NaiveDate::from_ymd_opt(2026, 11, 23));
            }),
            Ok(())
        );
    }

    #[test]
    fn every_problem_is_named_with_its_key_and_unknown_keys_are_refused() {
        let cases: &[(Value, &str)] = &[
            (json!({}), "`name` is required"),
            (
                json!({"name": ""}),
                "`name` must be a non-empty string of at most 10",
            ),
            (json!({"name": "a", "x": 1}), "unknown key `x`"),
            (
                json!({"name": "a", "ok": "yes"}),
                "`ok` must be true or false",
            ),
            (
                json!({"name": "a", "at": "noon"}),
                "`at` must be an RFC 3339 time",
            ),
            (
                json!({"name": "a", "tags": [""]}),
                "`tags` must be a list of at most 3",
            ),
            (
                json!({"name": "a", "id": "a b"}),
                "`id` must be 1–64 letters",
            ),
            (
                json!({"name": "a", "kind": "Big"}),
                "`kind` must be lower-case",
            ),
            (
                json!({"name": "a", "v": [1, "x"]}),
                "`v` must be a list of 1–4 finite numbers",
            ),
            (json!({"name": "a", "n": 11}), "`n` must be an integer 0–10"),
            (
                json!({"name": "a", "n": 1.5}),
                "`n` must be an integer 0–10",
            ),
            (
                json!({"name": "a", "day": "2026-13-01"}),
                "`day` must be a date, YYYY-MM-DD",
            ),
            (
                json!({"name": "a", "color": "red"}),
                "`color` must be one of blue, green",
            ),
        ];
        for (data, want) in cases {
            let got = read(data.clone(), |f| {
                f.string("name", 10);
                if f.has("ok") {
                    f.bool("ok");
                }
                f.opt_time("at");
                f.opt_strings("tags", 3, 8);
                if f.has("id") {
                    f.id("id");
                }
                if f.has("kind") {
                    f.key("kind");
                }
                f.opt_floats("v", 1, 4);
                f.opt_int("n", 0, 10);
                f.opt_date("day");
                f.opt_one_of("color", &["blue", "green"]);
            })
            .expect_err("refused");
            assert!(got.contains(want), "{data}: `{got}` lacks `{want}`");
        }
        assert_eq!(
            read(
                json!({"name": "a", "at": "2026-11-23T09:30:00+08:00"}),
                |f| {
                    f.string("name", 10);
                    assert!(f.opt_time("at").is_some());
                }
            ),
            Ok(())
        );
    }
}
