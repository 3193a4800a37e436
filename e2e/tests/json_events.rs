//! What CI reads: one name for an unchanged item, a time and a schema
//! version on every event, and the summary as the last line.

use crate::support::*;

fn check_lines(run: &Run) -> Vec<serde_json::Value> {
    let events = run.events();
    assert!(!events.is_empty(), "{}", run.all());
    for e in &events {
        assert_eq!(e["schema"], 1, "{e}");
        let time = e["time"].as_str().unwrap_or_default();
        assert!(
            chrono::DateTime::parse_from_rfc3339(time).is_ok(),
            "no RFC 3339 time: {e}"
        );
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_are_stamped_named_alike_and_end_with_the_summary() {
    let env = Env::start().await;
    let spec = env.stack("howdah.yaml", "js", "");
    env.up_ok(&spec).await;

    let again = env.up_ok_with(&spec, &["--output", "json"]).await;
    let events = check_lines(&again);
    assert_eq!(
        events.last().map(|e| e["event"].clone()),
        Some("summary".into())
    );
    let plan = events
        .iter()
        .find(|e| e["event"] == "plan")
        .expect("plan event");
    for item in plan["plan"]["items"].as_array().into_iter().flatten() {
        assert_eq!(item["action"], "no-op", "{item}");
    }
    let started: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "step_started")
        .collect();
    assert!(
        started.iter().all(|e| e["action"] == "no-op"),
        "{started:?}"
    );

    let plan = env.howdah(&["plan", "-f", path(&spec), "--json"]).await;
    assert!(!plan.stdout.contains("\"keep\""), "{}", plan.stdout);

    let valid = env
        .howdah(&["validate", "-f", path(&spec), "--output", "json"])
        .await;
    let events = check_lines(&valid);
    assert_eq!(events[0]["event"], "valid");

    let down = env
        .howdah(&[
            "down",
            "-f",
            path(&spec),
            "--output",
            "json",
            "--timeout",
            "60s",
        ])
        .await;
    assert_eq!(down.code, 0, "{}", down.all());
    let events = check_lines(&down);
    let names: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(names.last(), Some(&"summary"), "{names:?}");
    assert_eq!(names[names.len() - 2], "leftovers", "{names:?}");
}
