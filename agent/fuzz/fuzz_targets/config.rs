//! Arbitrary text into the strict config reader (`Config::parse`, what `branchd
//! check-config` and start-up run): it must never panic, and must either accept the text
//! or report at least one problem, each with a message, a line inside the text when it
//! has one, in source order. An accepted config's services are found by their code.
#![no_main]

use branchd::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The file is read with `read_to_string`: text that is not UTF-8 never gets here.
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let lines = src.split('\n').count();
    match Config::parse(src) {
        Ok(cfg) => {
            for s in &cfg.services {
                let found = cfg.service(&s.code).expect("a configured service is found");
                assert_eq!(found.code, s.code);
            }
        }
        Err(problems) => {
            assert!(!problems.is_empty(), "refused without a problem");
            for p in &problems {
                assert!(!p.message.is_empty(), "a problem without a message: {p:?}");
                if let Some(line) = p.line {
                    assert!((1..=lines).contains(&line), "line {line} of {lines}: {p:?}");
                }
                assert!(!p.to_string().is_empty());
            }
            let order = |p: &branchd::config::Problem| p.line.unwrap_or(usize::MAX);
            assert!(problems.windows(2).all(|w| order(&w[0]) <= order(&w[1])));
        }
    }
});
