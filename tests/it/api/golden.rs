//! Golden answers: for each `fixtures/golden/<suite>.json` (a policy and a list of
//! workloads), the exact bytes of each answer are kept in
//! `fixtures/golden/<suite>/<case>.json`.
//! `UPDATE_GOLDEN=1 cargo test --test it api::golden` rewrites them; review the diff
//! against SPEC §1 before committing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::helpers::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Suite {
    /// The policy file or folder, relative to the crate's root.
    policy: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    /// Also the expected file's name: `<suite>/<name>.json`.
    name: String,
    #[serde(rename = "projectId")]
    project: String,
    #[serde(rename = "nfObjectType")]
    kind: String,
    #[serde(rename = "nfObjectId")]
    id: String,
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn golden_dir() -> PathBuf {
    root().join("fixtures/golden")
}

/// The suites, in name order.
fn suites() -> Vec<(String, Suite)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .expect("fixtures/golden exists")
        .map(|entry| entry.expect("a folder entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json") && p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no golden suite in fixtures/golden");
    files
        .into_iter()
        .map(|file| {
            let name = file.file_stem().expect("a name").to_string_lossy().into_owned();
            let text = std::fs::read(&file).expect("read a suite");
            let suite: Suite = serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            (name, suite)
        })
        .collect()
}

fn updating() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1")
}

/// One item per line, so that a mismatch reads as a line diff.
fn readable(body: &str) -> String {
    match body.strip_prefix(r#"{"secrets":["#).and_then(|b| b.strip_suffix("]}")) {
        Some("") => body.to_owned(),
        Some(_) => format!("{{\"secrets\":[\n  {}\n]}}", split_items(body).join(",\n  ")),
        None => body.to_owned(),
    }
}

fn mismatch(what: &str, expected: &str, actual: &str) -> String {
    let at = expected
        .bytes()
        .zip(actual.bytes())
        .position(|(a, b)| a != b)
        .unwrap_or(expected.len().min(actual.len()));
    let mut lines = format!(
        "--- {what}: bytes differ from offset {at} (expected {} bytes, got {})\n",
        expected.len(),
        actual.len()
    );
    let (expected, actual) = (readable(expected), readable(actual));
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    for n in 0..e.len().max(a.len()) {
        match (e.get(n), a.get(n)) {
            (Some(x), Some(y)) if x == y => lines.push_str(&format!("    {x}\n")),
            (x, y) => {
                if let Some(x) = x {
                    lines.push_str(&format!("  - {x}\n"));
                }
                if let Some(y) = y {
                    lines.push_str(&format!("  + {y}\n"));
                }
            }
        }
    }
    lines
}

#[tokio::test]
async fn answers_match_the_golden_files_byte_for_byte() {
    let update = updating();
    let mut failures = Vec::new();
    let mut checked = 0;
    for (name, suite) in suites() {
        let policy = envoi::policy::load_path(&root().join(&suite.policy))
            .unwrap_or_else(|e| panic!("suite {name}: {}: {e}", suite.policy));
        let app = spawn_app(policy).await;
        let dir = golden_dir().join(&name);
        let mut names = BTreeSet::new();
        for case in &suite.cases {
            assert!(
                names.insert(case.name.clone()),
                "suite {name}: case {} twice",
                case.name
            );
            let what = format!("{name}/{}", case.name);
            // Checks the status and the SPEC shape, whatever the golden file says.
            let body = app.answer_for(wl(&case.project, &case.kind, &case.id)).await;
            let file = dir.join(format!("{}.json", case.name));
            if update {
                std::fs::create_dir_all(&dir).expect("create a golden folder");
                std::fs::write(&file, &body).expect("write a golden file");
            } else {
                match std::fs::read(&file) {
                    Ok(expected) if expected == body.as_bytes() => {}
                    Ok(expected) => failures.push(mismatch(&what, &String::from_utf8_lossy(&expected), &body)),
                    Err(e) => failures.push(format!(
                        "--- {what}: cannot read {}: {e} (UPDATE_GOLDEN=1 writes it)",
                        file.display()
                    )),
                }
            }
            checked += 1;
        }
        // No expected file without its case: a renamed case must not leave a stale one.
        for entry in std::fs::read_dir(&dir).expect("the suite's folder") {
            let path = entry.expect("a folder entry").path();
            let stem = path.file_stem().expect("a name").to_string_lossy().into_owned();
            if !names.contains(&stem) {
                failures.push(format!("--- {name}: {} belongs to no case", path.display()));
            }
        }
    }
    assert!(checked >= 10, "only {checked} golden cases");
    assert!(
        failures.is_empty(),
        "{} golden mismatch(es) (UPDATE_GOLDEN=1 rewrites the files; review them against SPEC §1):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The checked-in answers themselves follow SPEC §1, whatever the server says.
#[test]
fn every_golden_file_is_an_answer_the_spec_allows() {
    let mut seen = 0;
    for (name, suite) in suites() {
        for case in &suite.cases {
            let file = golden_dir().join(&name).join(format!("{}.json", case.name));
            let Ok(bytes) = std::fs::read(&file) else {
                continue; // reported by the other test
            };
            let body = String::from_utf8(bytes).unwrap_or_else(|_| panic!("{}: not UTF-8", file.display()));
            if let Err(why) = check_answer(&body) {
                panic!("{}: {why}", file.display());
            }
            assert!(
                !body.ends_with('\n'),
                "{}: a trailing newline is not in the answer",
                file.display()
            );
            seen += 1;
        }
    }
    assert!(seen >= 10, "only {seen} golden files");
}
