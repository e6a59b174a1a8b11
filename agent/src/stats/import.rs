//! `branchd history import FILE.csv`: past daily ticket volumes from a previous queue
//! system, loaded into the roll-ups so the statistics and the forecasts start with history.
//!
//! The file is UTF-8 CSV with a header row naming these columns (any order):
//!
//! | column | required | what |
//! |---|---|---|
//! | `date` | yes | the business day, `YYYY-MM-DD` |
//! | `service` | yes | the service code (as in `[[services]]` when a config is given) |
//! | `issued` | yes | tickets issued that day |
//! | `served` | no | tickets served (default: none known, 0) |
//! | `no_show` | no | tickets not answered |
//! | `avg_wait_s` | no | average wait of the served tickets, seconds |
//! | `avg_service_s` | no | average service time, seconds |
//!
//! Every row is checked before anything is written; one bad row (its line is named) and
//! nothing is loaded. Importing the same file again replaces the rows it loaded before; a
//! day and service the box has counted itself is refused.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use rusqlite::params;
use serde_json::json;

use crate::store::{StoreError, Tx};

/// One imported day of one service.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The line of the file it came from (1 is the header).
    pub line: u64,
    /// Business day.
    pub date: NaiveDate,
    /// Service code.
    pub service: String,
    /// Tickets issued.
    pub issued: i64,
    /// Tickets served.
    pub served: i64,
    /// Tickets not answered.
    pub no_show: i64,
    /// Average wait, seconds.
    pub avg_wait_s: Option<i64>,
    /// Average service time, seconds.
    pub avg_service_s: Option<i64>,
}

/// A problem with one line of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct BadRow {
    /// The line (1 is the header).
    pub line: u64,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for BadRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

const COLUMNS: [&str; 7] = [
    "date",
    "service",
    "issued",
    "served",
    "no_show",
    "avg_wait_s",
    "avg_service_s",
];

/// Read and check the whole file: every row, or every problem with its line. `services`,
/// when given, are the only service codes accepted.
pub fn parse(text: &str, services: Option<&[String]>) -> Result<Vec<Row>, Vec<BadRow>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(text.as_bytes());
    let header = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            return Err(vec![BadRow {
                line: 1,
                message: format!("cannot read the header: {e}"),
            }]);
        }
    };
    let mut bad = Vec::new();
    let col = |name: &str| header.iter().position(|h| h == name);
    for h in header.iter() {
        if !COLUMNS.contains(&h) {
            bad.push(BadRow {
                line: 1,
                message: format!("unknown column `{h}` (columns: {})", COLUMNS.join(", ")),
            });
        }
    }
    for req in ["date", "service", "issued"] {
        if col(req).is_none() {
            bad.push(BadRow {
                line: 1,
                message: format!("the header has no `{req}` column"),
            });
        }
    }
    if !bad.is_empty() {
        return Err(bad);
    }
    let idx: Vec<Option<usize>> = COLUMNS.iter().map(|c| col(c)).collect();
    let mut rows = Vec::new();
    let mut seen = BTreeSet::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                bad.push(BadRow {
                    line,
                    message: format!("not a valid CSV row: {e}"),
                });
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        let get = |k: usize| idx[k].and_then(|i| record.get(i)).unwrap_or("");
        let mut problems = Vec::new();
        let date = match NaiveDate::parse_from_str(get(0), "%Y-%m-%d") {
            Ok(d) => Some(d),
            Err(_) => {
                problems.push(format!("`{}` is not a date (YYYY-MM-DD)", get(0)));
                None
            }
        };
        let service = get(1).to_string();
        if service.is_empty() {
            problems.push("the service is empty".to_string());
        } else if let Some(list) = services
            && !list.contains(&service)
        {
            problems.push(format!(
                "unknown service `{service}` (configured: {})",
                list.join(", ")
            ));
        }
        let mut count = |k: usize, required: bool| -> Option<i64> {
            let v = get(k);
            if v.is_empty() {
                if required {
                    problems.push(format!("`{}` is empty", COLUMNS[k]));
                }
                return None;
            }
            match v.parse::<i64>() {
                Ok(n) if (0..=1_000_000).contains(&n) => Some(n),
                _ => {
                    problems.push(format!(
                        "`{}` must be a whole number from 0 to 1000000, not `{v}`",
                        COLUMNS[k]
                    ));
                    None
                }
            }
        };
        let issued = count(2, true);
        let served = count(3, false);
        let no_show = count(4, false);
        let avg_wait_s = count(5, false);
        let avg_service_s = count(6, false);
        if let (Some(i), Some(s)) = (issued, served)
            && s + no_show.unwrap_or(0) > i
        {
            problems.push(format!(
                "served and no_show ({}) exceed issued ({i})",
                s + no_show.unwrap_or(0)
            ));
        }
        if let Some(d) = date
            && !service.is_empty()
            && !seen.insert((d, service.clone()))
        {
            problems.push(format!("{d} {service} appears twice in the file"));
        }
        if problems.is_empty() {
            rows.push(Row {
                line,
                date: date.unwrap_or_default(),
                service,
                issued: issued.unwrap_or(0),
                served: served.unwrap_or(0),
                no_show: no_show.unwrap_or(0),
                avg_wait_s,
                avg_service_s,
            });
        } else {
            bad.extend(problems.into_iter().map(|message| BadRow { line, message }));
        }
    }
    if bad.is_empty() { Ok(rows) } else { Err(bad) }
}

/// Why an import was refused as a whole.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Rows that are wrong or clash with the box's own figures.
    #[error("{} bad row(s); nothing was imported", .0.len())]
    Rows(Vec<BadRow>),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Load checked rows in one transaction (`history.imported`): all of them, or — when one
/// names a day and service the box counted itself — none.
pub fn load(tx: &mut Tx<'_>, rows: &[Row], file: &str) -> Result<usize, ImportError> {
    let mut bad = Vec::new();
    for r in rows {
        let day = r.date.to_string();
        let live: bool = tx
            .conn()
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM stats_tickets WHERE day = ?1 AND service = ?2 \
                 AND source <> 'import')",
                params![day, r.service],
                |row| row.get(0),
            )
            .map_err(StoreError::from)?;
        if live {
            bad.push(BadRow {
                line: r.line,
                message: format!(
                    "{day} {} already has figures counted by this box; not replaced",
                    r.service
                ),
            });
        }
    }
    if !bad.is_empty() {
        return Err(ImportError::Rows(bad));
    }
    for r in rows {
        let called = r.served;
        tx.conn()
            .execute(
                "INSERT INTO stats_tickets(day, service, issued, called, served, no_show, \
                 wait_sum_s, service_sum_s, source) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'import') \
                 ON CONFLICT(day, service) DO UPDATE SET issued = excluded.issued, \
                 called = excluded.called, served = excluded.served, no_show = excluded.no_show, \
                 wait_sum_s = excluded.wait_sum_s, wait_max_s = 0, wait_hist = '{}', \
                 service_sum_s = excluded.service_sum_s",
                params![
                    r.date.to_string(),
                    r.service,
                    r.issued,
                    if r.avg_wait_s.is_some() { called } else { 0 },
                    r.served,
                    r.no_show,
                    r.avg_wait_s.unwrap_or(0) * called,
                    r.avg_service_s.unwrap_or(0) * r.served
                ],
            )
            .map_err(StoreError::from)?;
    }
    let from = rows.iter().map(|r| r.date).min();
    let to = rows.iter().map(|r| r.date).max();
    tx.emit(
        "history.imported",
        json!({"rows": rows.len(), "from": from, "to": to, "file": file}),
    )?;
    Ok(rows.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<(u64, String)> {
        match parse(
            text,
            Some(&["personal".to_string(), "corporate".to_string()]),
        ) {
            Ok(_) => Vec::new(),
            Err(bad) => bad.into_iter().map(|b| (b.line, b.message)).collect(),
        }
    }

    #[test]
    fn a_good_file_reads_every_row_with_optional_columns_left_empty() {
        let rows = parse(
            "date,service,issued,served,avg_wait_s\n\
             2026-01-05,personal,120,110,300\n\
             2026-01-05,corporate,30,,\n",
            None,
        )
        .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].line, 2);
        assert_eq!(rows[0].avg_wait_s, Some(300));
        assert_eq!(
            (rows[1].issued, rows[1].served, rows[1].avg_wait_s),
            (30, 0, None)
        );
    }

    #[test]
    fn every_bad_row_is_reported_with_its_line() {
        let cases: &[(&str, &[(u64, &str)])] = &[
            ("date,service\n", &[(1, "no `issued` column")]),
            (
                "date,service,issued,colour\n",
                &[(1, "unknown column `colour`")],
            ),
            (
                "date,service,issued\n2026-01-05,personal,10\n2026-13-01,personal,5\n",
                &[(3, "not a date")],
            ),
            (
                "date,service,issued\n2026-01-05,loans,10\n",
                &[(2, "unknown service `loans`")],
            ),
            (
                "date,service,issued,served\n2026-01-05,personal,-1,\n2026-01-06,personal,5,9\n",
                &[(2, "`issued` must be a whole number"), (3, "exceed issued")],
            ),
            (
                "date,service,issued\n2026-01-05,personal,10\n2026-01-05,personal,11\n",
                &[(3, "appears twice")],
            ),
            (
                "date,service,issued\n2026-01-05,personal\n",
                &[(2, "not a valid CSV row")],
            ),
        ];
        for (text, want) in cases {
            let got = lines(text);
            assert_eq!(got.len(), want.len(), "{text:?}: {got:?}");
            for ((line, msg), (wl, wm)) in got.iter().zip(want.iter()) {
                assert_eq!(line, wl, "{text:?}: {msg}");
                assert!(msg.contains(wm), "{text:?}: `{msg}` lacks `{wm}`");
            }
        }
    }
}
