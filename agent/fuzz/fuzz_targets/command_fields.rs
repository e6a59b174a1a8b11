//! Arbitrary JSON objects into the strict reader of a command's `data`
//! (`command::Fields`), asked for one key of each kind it reads: it must never panic,
//! every value it returns must meet what was asked (non-empty, length, range, choices,
//! finite), and `finish` must accept exactly the objects without an unknown key or a
//! problem (a required key that is missing is a problem).
#![no_main]

use branchd::command::{Fields, is_code};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

const KNOWN: [&str; 13] = [
    "s", "os", "o", "n", "on", "t", "d", "c", "l", "f", "b", "i", "k",
];

fuzz_target!(|data: &[u8]| {
    let Ok(map) = serde_json::from_slice::<Map<String, Value>>(data) else {
        return;
    };
    let mut f = Fields::new(&map);
    let mut ok = true;
    let mut check = |got: bool, present: bool, required: bool| {
        // A value comes back only when it is there; a missing required one is a problem.
        ok &= got || (!present && !required);
    };
    let present = |k: &str| map.get(k).is_some_and(|v| !v.is_null());

    let s = f.string("s", 8);
    if let Some(s) = &s {
        assert!(!s.trim().is_empty() && s.chars().count() <= 8);
    }
    check(s.is_some(), present("s"), true);
    let os = f.opt_string("os", 3);
    check(os.is_some(), present("os"), false);
    let o = f.opt_object("o", 2);
    if let Some(o) = &o {
        assert!(o.len() <= 2);
    }
    check(o.is_some(), present("o"), false);
    let n = f.int("n", -5, 100);
    if let Some(n) = n {
        assert!((-5..=100).contains(&n));
    }
    check(n.is_some(), present("n"), true);
    let on = f.opt_int("on", 0, 0);
    assert!(matches!(on, None | Some(0)));
    check(on.is_some(), present("on"), false);
    let t = f.opt_time("t");
    check(t.is_some(), present("t"), false);
    let d = f.opt_date("d");
    check(d.is_some(), present("d"), false);
    let c = f.one_of("c", &["x", "y"]);
    if let Some(c) = &c {
        assert!(c == "x" || c == "y");
    }
    check(c.is_some(), present("c"), true);
    let l = f.opt_strings("l", 3, 4);
    if let Some(l) = &l {
        assert!(l.len() <= 3);
        assert!(l.iter().all(|s| !s.is_empty() && s.chars().count() <= 4));
    }
    check(l.is_some(), present("l"), false);
    let fl = f.opt_floats("f", 1, 4);
    if let Some(fl) = &fl {
        assert!((1..=4).contains(&fl.len()));
        assert!(fl.iter().all(|x| x.is_finite()));
    }
    check(fl.is_some(), present("f"), false);
    let b = f.bool("b");
    check(b.is_some(), present("b"), true);
    let i = f.id("i");
    if let Some(i) = &i {
        assert!(is_code(i));
    }
    check(i.is_some(), present("i"), true);
    let k = f.key("k");
    if let Some(k) = &k {
        assert!(branchd::command::is_key(k));
    }
    check(k.is_some(), present("k"), true);

    let unknown = map.keys().any(|k| !KNOWN.contains(&k.as_str()));
    let clean = f.is_clean();
    match f.finish() {
        Ok(()) => assert!(ok && clean && !unknown),
        Err(e) => {
            assert!(!e.is_empty());
            assert!(!ok || !clean || unknown);
        }
    }
});
