//! `envoi::policy::load_str` on arbitrary UTF-8 text: it must never panic and never
//! hang (libFuzzer's `-timeout` turns a hang into a reported crash).
//!
//! When a policy loads, it is also asked for the answer of a few workloads derived from
//! its own selectors: the answer must be valid JSON of the protocol's shape, ENV items
//! before FILE items, each sorted by name without duplicates (SPEC §1).

#![no_main]

use envoi::auth::Workload;
use envoi::policy::Pattern;
use libfuzzer_sys::fuzz_target;

/// A name a pattern matches (globs' wildcards replaced), clipped to a legal claim.
fn name_for(pattern: &Pattern) -> String {
    let text: String = pattern
        .to_string()
        .chars()
        .map(|c| if c == '*' || c == '?' { 'x' } else { c })
        .take(64)
        .collect();
    if text.is_empty() {
        "x".to_owned()
    } else {
        text
    }
}

fn check_answer(json: &[u8]) {
    let value: serde_json::Value = serde_json::from_slice(json).expect("an answer is valid JSON");
    let items = value["secrets"].as_array().expect("an answer has a secrets array");
    let mut last: Option<(u8, String)> = None;
    for item in items {
        let key = match item["type"].as_str() {
            Some("ENV") => (0, item["key"].as_str().expect("ENV has a key").to_owned()),
            Some("FILE") => (1, item["path"].as_str().expect("FILE has a path").to_owned()),
            other => panic!("unknown item type {other:?}"),
        };
        if let Some(last) = &last {
            assert!(*last < key, "items out of order or duplicated");
        }
        last = Some(key);
    }
}

fuzz_target!(|text: &str| {
    let Ok(policy) = envoi::policy::load_str("fuzz.toml", text, None) else {
        return;
    };
    let mut workloads = vec![("x".to_owned(), "x".to_owned(), "x".to_owned())];
    for grant in policy.grants().iter().take(8) {
        let s = &grant.selector;
        workloads.push((name_for(&s.project), name_for(&s.kind), name_for(&s.id)));
    }
    for (project, kind, id) in workloads {
        let Ok(workload) = Workload::new(&project, &kind, &id) else {
            continue;
        };
        let mut out = Vec::new();
        policy.answer(&workload).write_json(&workload, &mut out);
        check_answer(&out);
    }
});
