//! The shape of the code as a checked rule: which module of `agent/src` may import which
//! (ARCHITECTURE.md explains why), and no cycle anywhere in the import graph.
//!
//! Read from the sources: every `crate::…` path outside test code names the module it
//! uses. Test code (`tests.rs` files and the items marked `#[cfg(test)]`, wherever they
//! are in a file) may reach further.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::sources::{non_test_code, rust_files};

/// Each module and the modules it may import. The foundation first, then the domain
/// modules, then the composition (`modules`, `app`, `demo`, `cli`), which nothing below
/// imports.
const ALLOWED: &[(&str, &[&str])] = &[
    // foundation
    ("models", &[]),
    ("image", &[]),
    ("signals", &[]),
    ("tls", &[]),
    ("docfill", &[]),
    ("config", &["models"]),
    ("clock", &["config"]),
    ("command", &["clock", "config"]),
    ("logging", &["config"]),
    ("store", &["clock"]),
    ("metrics", &["store"]),
    (
        "core",
        &["clock", "config", "metrics", "models", "signals", "store"],
    ),
    ("users", &["clock", "store"]),
    (
        "http",
        &["clock", "config", "core", "metrics", "store", "users"],
    ),
    ("alerts", &["clock", "core", "http", "store"]),
    ("storage", &["alerts", "core", "store"]),
    ("retention", &["clock", "config", "core", "store"]),
    // domain modules: only the edges a module really needs
    (
        "vips",
        &["retention", "clock", "command", "config", "store", "users"],
    ),
    (
        "orders",
        &[
            "retention",
            "alerts",
            "clock",
            "command",
            "config",
            "core",
            "docfill",
            "http",
            "store",
            "users",
        ],
    ),
    (
        "queue",
        &[
            "retention",
            "alerts",
            "clock",
            "config",
            "core",
            "customers",
            "http",
            "orders",
            "signals",
            "store",
            "users",
            "vips",
        ],
    ),
    (
        "devices",
        &[
            "retention",
            "alerts",
            "clock",
            "config",
            "core",
            "http",
            "signals",
            "store",
            "users",
        ],
    ),
    (
        "vision",
        &[
            "retention",
            "alerts",
            "clock",
            "config",
            "core",
            "http",
            "image",
            "models",
            "store",
            "users",
            "vips",
        ],
    ),
    (
        "ocr",
        &[
            "retention",
            "clock",
            "config",
            "core",
            "devices",
            "http",
            "image",
            "models",
            "store",
            "users",
        ],
    ),
    (
        "products",
        &[
            "retention",
            "clock",
            "command",
            "config",
            "core",
            "customers",
            "devices",
            "http",
            "store",
        ],
    ),
    (
        "customers",
        &[
            "retention",
            "clock",
            "command",
            "config",
            "core",
            "docfill",
            "http",
            "signals",
            "store",
            "users",
            "vips",
        ],
    ),
    (
        "leads",
        &[
            "retention",
            "alerts",
            "clock",
            "command",
            "core",
            "customers",
            "http",
            "store",
            "users",
        ],
    ),
    (
        "rights",
        &[
            "retention",
            "clock",
            "command",
            "config",
            "core",
            "customers",
            "http",
            "store",
        ],
    ),
    (
        "sync",
        &[
            "retention",
            "alerts",
            "clock",
            "command",
            "config",
            "core",
            "customers",
            "devices",
            "leads",
            "orders",
            "products",
            "queue",
            "rights",
            "store",
            "tls",
            "updates",
            "vips",
        ],
    ),
    (
        "updates",
        &[
            "retention",
            "clock",
            "command",
            "config",
            "core",
            "models",
            "ocr",
            "store",
            "tls",
            "users",
            "vision",
        ],
    ),
    (
        "stats",
        &[
            "retention",
            "clock",
            "config",
            "core",
            "devices",
            "http",
            "queue",
            "store",
            "users",
        ],
    ),
];

/// The composition may import every module above, and those before it in this list.
const COMPOSITION: &[&str] = &["modules", "app", "demo", "cli"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The top-level module a file belongs to (`queue/ops.rs` → `queue`).
fn module_of(file: &Path) -> String {
    let rel = file.strip_prefix(src()).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// The modules a piece of code names with `crate::…`.
fn uses(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let code: String = code
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for name in group[..end].split(',') {
                let name = name.trim().split("::").next().unwrap_or("").trim();
                if !name.is_empty() {
                    out.insert(name.to_string());
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// Which module imports which, from the sources.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let known: BTreeSet<String> = files.iter().map(|f| module_of(f)).collect();
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let m = module_of(f);
        if m == "lib" || m == "main" {
            continue;
        }
        let deps = g.entry(m.clone()).or_default();
        for u in uses(&non_test_code(f)) {
            // `crate::VERSION` and the like are items of the crate root, not modules.
            if u != m && known.contains(&u) {
                deps.insert(u);
            }
        }
    }
    g
}

fn allowed(module: &str) -> Option<BTreeSet<&'static str>> {
    if let Some((_, deps)) = ALLOWED.iter().find(|(m, _)| *m == module) {
        return Some(deps.iter().copied().collect());
    }
    let at = COMPOSITION.iter().position(|m| *m == module)?;
    Some(
        ALLOWED
            .iter()
            .map(|(m, _)| *m)
            .chain(COMPOSITION[..at].iter().copied())
            .collect(),
    )
}

#[test]
fn every_module_imports_only_what_the_rule_allows() {
    let g = graph();
    let mut problems = Vec::new();
    for (m, deps) in &g {
        let Some(ok) = allowed(m) else {
            problems.push(format!("`{m}` has no rule: add it to ALLOWED"));
            continue;
        };
        for d in deps {
            if !ok.contains(d.as_str()) {
                problems.push(format!("`{m}` imports `{d}`"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(g.len() > 20, "only {} modules found", g.len());
}

#[test]
fn the_import_graph_has_no_cycle() {
    let g = graph();
    // Kahn's algorithm: whatever cannot be ordered sits on a cycle.
    let mut pending: BTreeMap<&str, usize> = g.keys().map(|m| (m.as_str(), 0)).collect();
    for deps in g.values() {
        for d in deps {
            if let Some(n) = pending.get_mut(d.as_str()) {
                *n += 1;
            }
        }
    }
    let mut ready: Vec<&str> = pending
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(m, _)| *m)
        .collect();
    let mut ordered = 0;
    while let Some(m) = ready.pop() {
        ordered += 1;
        for d in &g[m] {
            if let Some(n) = pending.get_mut(d.as_str()) {
                *n -= 1;
                if *n == 0 {
                    ready.push(d.as_str());
                }
            }
        }
    }
    let stuck: Vec<&str> = pending
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(m, _)| *m)
        .collect();
    assert_eq!(ordered, g.len(), "modules on a cycle: {stuck:?}");
}

#[test]
fn the_reader_of_imports_sees_groups_paths_and_skips_comments() {
    let code =
        "use crate::{alerts, queue::ops};\nlet x = crate::store::rfc3339(t);\n// crate::app\n";
    let got: Vec<String> = uses(code).into_iter().collect();
    assert_eq!(got, ["alerts", "queue", "store"]);
}
