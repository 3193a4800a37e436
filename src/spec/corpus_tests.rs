//! The spec corpus under `e2e/specs/`: every good spec (and every starter)
//! parses and satisfies the JSON Schema; every broken spec fails exactly
//! where the `# expect: <line>:<column> <text>` on its first line says, with
//! `<text>` found in the problem as printed (`path: message (help: …)`).
//! The e2e suite runs the binary on the same files.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{json_schema, parse, schema::check, starter, starter_targets, structural};

fn corpus(kind: &str) -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("e2e/specs")
        .join(kind);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = fs::read_to_string(&path).unwrap();
            (name, text)
        })
        .collect()
}

/// `# expect: 12:5 some text` → (12, 5, "some text").
fn expectation(name: &str, text: &str) -> (usize, usize, String) {
    let first = text.lines().next().unwrap_or_default();
    let rest = first
        .strip_prefix("# expect: ")
        .unwrap_or_else(|| panic!("{name}: first line must be `# expect: <line>:<col> <text>`"));
    let (position, wanted) = rest.split_once(' ').unwrap();
    let (line, column) = position.split_once(':').unwrap();
    (
        line.parse().unwrap(),
        column.parse().unwrap(),
        wanted.to_string(),
    )
}

#[test]
fn every_good_spec_parses() {
    let good = corpus("good");
    assert!(
        good.len() >= 4,
        "the good corpus has only {} files",
        good.len()
    );
    let failures: Vec<String> = good
        .iter()
        .filter_map(|(name, text)| parse(name, text).err().map(|e| e.to_string()))
        .collect();
    assert!(
        failures.is_empty(),
        "good specs refused:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_good_spec_round_trips_through_yaml_and_json() {
    for (name, text) in corpus("good") {
        let stack = parse(&name, &text).unwrap();
        let yaml = serde_norway::to_string(&stack).unwrap();
        let again = parse(&name, &yaml).unwrap_or_else(|e| panic!("{name}:\n{yaml}\n{e}"));
        assert_eq!(again, stack, "{name} via YAML");
        let json = serde_json::to_value(&stack).unwrap();
        let target = json["target"]
            .as_object()
            .map(|t| t.keys().collect::<Vec<_>>());
        assert_eq!(
            target,
            Some(vec![&stack.target.name().to_string()]),
            "{name}: {json}"
        );
    }
}

#[test]
fn every_good_spec_and_starter_satisfies_the_json_schema() {
    let schema = json_schema();
    let mut examples = corpus("good");
    for target in starter_targets() {
        let text = starter(target).unwrap_or_default().to_string();
        examples.push((format!("starter {target}"), text));
    }
    for (name, text) in examples {
        let instance: Value = serde_norway::from_str(&text).unwrap();
        let violations = check::violations(&schema, &instance);
        assert!(violations.is_empty(), "{name}: {violations:#?}");
    }
}

#[test]
fn every_broken_spec_fails_where_it_says() {
    let broken = corpus("broken");
    assert!(
        broken.len() >= 35,
        "the broken corpus has only {} files",
        broken.len()
    );
    let mut failures = Vec::new();
    for (name, text) in &broken {
        let (line, column, wanted) = expectation(name, text);
        let error = match parse(name, text) {
            Ok(_) => {
                failures.push(format!(
                    "{name}: parsed, expected a problem at {line}:{column}"
                ));
                continue;
            }
            Err(error) => error,
        };
        let hit = error
            .problems()
            .iter()
            .any(|p| p.line == line && p.column == column && p.describe().contains(&wanted));
        if !hit {
            failures.push(format!(
                "{name}: wanted {line}:{column} {wanted:?}, got:\n  {}",
                error.to_string().replace('\n', "\n  ")
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_broken_spec_has_exactly_one_mistake() {
    for (name, text) in corpus("broken") {
        let count = parse(&name, &text).err().map_or(0, |e| e.problems().len());
        assert_eq!(count, 1, "{name} reports {count} problems");
    }
}

/// Mistakes in the file's structure (as opposed to YAML syntax, or the
/// semantic rules) must be caught by the schema too, or editors using
/// `howdah schema` would accept what `howdah` refuses.
#[test]
fn structural_mistakes_are_refused_by_the_schema_too() {
    let schema = json_schema();
    let mut checked = 0;
    for (name, text) in corpus("broken") {
        if super::prescan::check(&text).is_some() || structural::check_document(&text).is_err() {
            continue;
        }
        if serde_norway::from_str::<super::Stack>(&text).is_ok() {
            continue;
        }
        let instance: Value = serde_norway::from_str(&text).unwrap();
        assert!(
            !check::violations(&schema, &instance).is_empty(),
            "{name}: the parser refuses it but the schema accepts it"
        );
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} structural cases");
}

/// The slowest of the corpus must still validate in well under 50 ms, even
/// in a debug build: validation runs before every command.
#[test]
fn validation_is_fast() {
    let mut slowest = (Duration::ZERO, String::new());
    for (name, text) in corpus("good").into_iter().chain(corpus("broken")) {
        let best = (0..5)
            .map(|_| {
                let start = Instant::now();
                let _ = parse(&name, &text);
                start.elapsed()
            })
            .min()
            .unwrap_or_default();
        if best > slowest.0 {
            slowest = (best, name);
        }
    }
    assert!(
        slowest.0 < Duration::from_millis(25),
        "{} took {:?}",
        slowest.1,
        slowest.0
    );
}
