//! The executor: runs a set of steps as a DAG with bounded parallelism. A
//! step starts the moment its dependencies are done; a failed step skips its
//! dependents but lets independent branches finish; cancellation stops
//! launching, gives in-flight steps a grace period to reach a safe point,
//! and reports what was left undone. What a step does is not its business.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use howdah_provider::{Action, Outputs, Progress, ProviderError, StepContext};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::events::{Event, EventSink};

/// The work of one step: given the context, produce outputs.
pub type Work = Box<
    dyn FnOnce(StepContext) -> BoxFuture<'static, Result<serde_json::Value, ProviderError>> + Send,
>;

/// One vertex of the graph.
pub struct Step {
    pub id: String,
    pub action: Action,
    pub deps: Vec<String>,
    pub expected: Duration,
    pub timeout: Duration,
    /// Stopped at once on cancellation (it writes nothing), rather than
    /// given the grace period.
    pub interruptible: bool,
    pub work: Work,
}

/// How a step ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Done(serde_json::Value),
    Failed(String),
    Skipped(String),
}

/// One step's result.
#[derive(Debug, Clone)]
pub struct StepResult {
    pub id: String,
    pub action: Action,
    pub outcome: Outcome,
    pub elapsed: Duration,
}

/// The whole run.
#[derive(Debug, Default)]
pub struct RunReport {
    pub results: Vec<StepResult>,
    pub interrupted: bool,
    pub elapsed: Duration,
}

impl RunReport {
    pub fn ok(&self) -> bool {
        !self.interrupted
            && self
                .results
                .iter()
                .all(|r| matches!(r.outcome, Outcome::Done(_)))
    }

    pub fn count(&self, pred: impl Fn(&Outcome) -> bool) -> usize {
        self.results.iter().filter(|r| pred(&r.outcome)).count()
    }

    pub fn failures(&self) -> Vec<&StepResult> {
        self.results
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Failed(_)))
            .collect()
    }
}

/// Run settings.
#[derive(Clone)]
pub struct RunOptions {
    pub parallelism: usize,
    pub cancel: CancellationToken,
    /// After cancellation, how long in-flight steps may run on.
    pub grace: Duration,
}

/// Errors in the graph itself (found before anything runs).
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("step `{0}` appears twice")]
    Duplicate(String),
    #[error("dependency cycle through {0}")]
    Cycle(String),
}

/// Checks the graph: unique ids and no cycles. Dependencies on ids that are
/// not in the set count as already satisfied (they were done earlier).
pub fn check_graph(steps: &[(String, Vec<String>)]) -> Result<Vec<String>, GraphError> {
    let mut ids = BTreeSet::new();
    for (id, _) in steps {
        if !ids.insert(id.clone()) {
            return Err(GraphError::Duplicate(id.clone()));
        }
    }
    let mut indegree: BTreeMap<&str, usize> = BTreeMap::new();
    let mut dependents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (id, deps) in steps {
        let known: Vec<&String> = deps.iter().filter(|d| ids.contains(*d)).collect();
        indegree.insert(id, known.len());
        for d in known {
            dependents.entry(d).or_default().push(id);
        }
    }
    let mut queue: VecDeque<&str> = indegree
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(id, _)| *id)
        .collect();
    let mut order = Vec::new();
    while let Some(id) = queue.pop_front() {
        order.push(id.to_string());
        for dep in dependents.get(id).cloned().unwrap_or_default() {
            if let Some(n) = indegree.get_mut(dep) {
                *n -= 1;
                if *n == 0 {
                    queue.push_back(dep);
                }
            }
        }
    }
    if order.len() != steps.len() {
        let stuck: Vec<&str> = indegree
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(id, _)| *id)
            .collect();
        return Err(GraphError::Cycle(stuck.join(", ")));
    }
    Ok(order)
}

struct StepProgress {
    step: String,
    sink: Arc<dyn EventSink>,
}

impl Progress for StepProgress {
    fn report(&self, message: &str) {
        self.sink.emit(&Event::StepProgress {
            step: self.step.clone(),
            message: message.to_string(),
        });
    }
}

/// Runs the steps. `on_result` is called once per step as it ends (the
/// caller writes its state there), in the order steps end; the future it
/// returns is awaited before the next result is taken.
pub async fn run<R>(
    steps: Vec<Step>,
    options: &RunOptions,
    outputs: &Outputs,
    sink: Arc<dyn EventSink>,
    mut on_result: impl FnMut(&StepResult) -> R,
) -> Result<RunReport, GraphError>
where
    R: std::future::Future<Output = ()>,
{
    let shape: Vec<(String, Vec<String>)> = steps
        .iter()
        .map(|s| (s.id.clone(), s.deps.clone()))
        .collect();
    check_graph(&shape)?;
    let started = Instant::now();
    let ids: BTreeSet<String> = steps.iter().map(|s| s.id.clone()).collect();
    let mut waiting: BTreeMap<String, Step> =
        steps.into_iter().map(|s| (s.id.clone(), s)).collect();
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut report = RunReport::default();
    let mut in_flight: JoinSet<StepResult> = JoinSet::new();
    // Steps that may be stopped at once, by task: (id, action, handle).
    let mut stoppable: BTreeMap<tokio::task::Id, (String, Action, tokio::task::AbortHandle)> =
        BTreeMap::new();
    let parallelism = options.parallelism.max(1);
    let mut grace_deadline: Option<tokio::time::Instant> = None;

    loop {
        // Launch whatever is ready, unless we are stopping.
        if !options.cancel.is_cancelled() {
            let ready: Vec<String> = waiting
                .values()
                .filter(|s| s.deps.iter().all(|d| !ids.contains(d) || done.contains(d)))
                .map(|s| s.id.clone())
                .collect();
            for id in ready {
                if in_flight.len() >= parallelism {
                    break;
                }
                if let Some(step) = waiting.remove(&id) {
                    let (id, action, interruptible) =
                        (step.id.clone(), step.action, step.interruptible);
                    let handle = launch(&mut in_flight, step, outputs, &sink);
                    if interruptible {
                        stoppable.insert(handle.id(), (id, action, handle));
                    }
                }
            }
        }
        if in_flight.is_empty() {
            break;
        }
        let finished = if let Some(deadline) = grace_deadline {
            tokio::select! {
                r = in_flight.join_next() => r,
                _ = tokio::time::sleep_until(deadline) => {
                    in_flight.abort_all();
                    None
                }
            }
        } else {
            tokio::select! {
                r = in_flight.join_next() => r,
                _ = options.cancel.cancelled() => {
                    report.interrupted = true;
                    grace_deadline = Some(tokio::time::Instant::now() + options.grace);
                    for (_, _, handle) in stoppable.values() {
                        handle.abort();
                    }
                    continue;
                }
            }
        };
        let Some(joined) = finished else {
            // Grace ran out: whatever was still running is abandoned.
            while let Some(_aborted) = in_flight.join_next().await {}
            break;
        };
        let result = match joined {
            Ok(result) => {
                stoppable.retain(|_, (id, _, _)| *id != result.id);
                result
            }
            Err(e) if e.is_cancelled() && stoppable.contains_key(&e.id()) => {
                let (id, action, _) = stoppable.remove(&e.id()).expect("checked above");
                StepResult {
                    id,
                    action,
                    outcome: Outcome::Skipped("interrupted".into()),
                    elapsed: Duration::ZERO,
                }
            }
            Err(e) => StepResult {
                id: String::from("(unknown)"),
                action: Action::Keep,
                outcome: Outcome::Failed(format!("step panicked: {e}")),
                elapsed: Duration::ZERO,
            },
        };
        match &result.outcome {
            Outcome::Done(value) => {
                outputs.set(&result.id, value.clone());
                done.insert(result.id.clone());
                sink.emit(&Event::StepFinished {
                    step: result.id.clone(),
                    action: result.action.as_str().into(),
                    elapsed_s: result.elapsed.as_secs_f64(),
                });
            }
            Outcome::Failed(error) => {
                sink.emit(&Event::StepFailed {
                    step: result.id.clone(),
                    action: result.action.as_str().into(),
                    elapsed_s: result.elapsed.as_secs_f64(),
                    error: error.clone(),
                });
                for skipped in skip_dependents(&mut waiting, &result.id) {
                    let r = StepResult {
                        id: skipped.id.clone(),
                        action: skipped.action,
                        outcome: Outcome::Skipped(format!("`{}` failed", result.id)),
                        elapsed: Duration::ZERO,
                    };
                    emit_skip(&sink, &r);
                    on_result(&r).await;
                    report.results.push(r);
                }
            }
            Outcome::Skipped(_) => emit_skip(&sink, &result),
        }
        on_result(&result).await;
        report.results.push(result);
    }

    // Whatever never started was left undone by the interruption.
    for (_, step) in std::mem::take(&mut waiting) {
        let r = StepResult {
            id: step.id,
            action: step.action,
            outcome: Outcome::Skipped("interrupted before it started".into()),
            elapsed: Duration::ZERO,
        };
        emit_skip(&sink, &r);
        on_result(&r).await;
        report.results.push(r);
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

fn emit_skip(sink: &Arc<dyn EventSink>, r: &StepResult) {
    if let Outcome::Skipped(reason) = &r.outcome {
        sink.emit(&Event::StepSkipped {
            step: r.id.clone(),
            reason: reason.clone(),
        });
    }
}

fn launch(
    in_flight: &mut JoinSet<StepResult>,
    step: Step,
    outputs: &Outputs,
    sink: &Arc<dyn EventSink>,
) -> tokio::task::AbortHandle {
    sink.emit(&Event::StepStarted {
        step: step.id.clone(),
        action: step.action.as_str().into(),
        expected_s: step.expected.as_secs_f64(),
    });
    let ctx = StepContext {
        outputs: outputs.clone(),
        progress: Arc::new(StepProgress {
            step: step.id.clone(),
            sink: sink.clone(),
        }),
    };
    let Step {
        id,
        action,
        timeout,
        work,
        ..
    } = step;
    in_flight.spawn(async move {
        let start = Instant::now();
        let outcome = match tokio::time::timeout(timeout, work(ctx)).await {
            Ok(Ok(value)) => Outcome::Done(value),
            Ok(Err(e)) => Outcome::Failed(e.to_string()),
            Err(_) => Outcome::Failed(format!(
                "timed out after {}s (raise it with --timeout)",
                timeout.as_secs()
            )),
        };
        StepResult {
            id,
            action,
            outcome,
            elapsed: start.elapsed(),
        }
    })
}

/// Removes and returns every waiting step that depends, directly or not, on `failed`.
fn skip_dependents(waiting: &mut BTreeMap<String, Step>, failed: &str) -> Vec<Step> {
    let mut doomed: BTreeSet<String> = BTreeSet::from([failed.to_string()]);
    loop {
        let more: Vec<String> = waiting
            .values()
            .filter(|s| !doomed.contains(&s.id) && s.deps.iter().any(|d| doomed.contains(d)))
            .map(|s| s.id.clone())
            .collect();
        if more.is_empty() {
            break;
        }
        doomed.extend(more);
    }
    doomed.remove(failed);
    doomed
        .into_iter()
        .filter_map(|id| waiting.remove(&id))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Quiet;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    fn step(id: &str, deps: &[&str], ms: u64, log: Arc<Mutex<Vec<String>>>) -> Step {
        let id_owned = id.to_string();
        Step {
            id: id.into(),
            action: Action::Create,
            deps: deps.iter().map(|d| d.to_string()).collect(),
            expected: Duration::from_millis(ms),
            timeout: Duration::from_secs(5),
            interruptible: false,
            work: Box::new(move |_ctx| {
                Box::pin(async move {
                    log.lock().unwrap().push(format!("start {id_owned}"));
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    log.lock().unwrap().push(format!("end {id_owned}"));
                    if id_owned.starts_with("bad") {
                        Err(ProviderError::api("boom"))
                    } else {
                        Ok(serde_json::json!({ "id": id_owned }))
                    }
                })
            }),
        }
    }

    fn opts(parallelism: usize) -> RunOptions {
        RunOptions {
            parallelism,
            cancel: CancellationToken::new(),
            grace: Duration::from_millis(200),
        }
    }

    #[tokio::test]
    async fn independent_steps_run_in_parallel_and_dependents_wait() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let steps = vec![
            step("cluster", &[], 100, log.clone()),
            step("bucket", &[], 30, log.clone()),
            step("runtime", &["cluster", "bucket"], 10, log.clone()),
        ];
        let outputs = Outputs::default();
        let report = run(steps, &opts(8), &outputs, Arc::new(Quiet), |_| async {})
            .await
            .unwrap();
        assert!(report.ok());
        let log = log.lock().unwrap().clone();
        let pos = |s: &str| log.iter().position(|l| l == s).unwrap();
        // The two roots overlap (the bucket starts before the slow cluster
        // ends) instead of running one after the other; judged by order,
        // not by wall time, so a loaded machine cannot make it flake.
        assert!(pos("start bucket") < pos("end cluster"), "{log:?}");
        assert!(pos("start cluster") < pos("end bucket"), "{log:?}");
        assert!(pos("start runtime") > pos("end cluster"));
        assert!(pos("start runtime") > pos("end bucket"));
        assert_eq!(outputs.get("bucket").unwrap()["id"], "bucket");
    }

    #[tokio::test]
    async fn parallelism_bounds_steps_in_flight() {
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let steps = (0..6)
            .map(|i| {
                let running = running.clone();
                let peak = peak.clone();
                Step {
                    id: format!("s{i}"),
                    action: Action::Create,
                    deps: vec![],
                    expected: Duration::ZERO,
                    timeout: Duration::from_secs(5),
                    interruptible: false,
                    work: Box::new(move |_| {
                        Box::pin(async move {
                            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                            peak.fetch_max(now, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            running.fetch_sub(1, Ordering::SeqCst);
                            Ok(serde_json::Value::Null)
                        })
                    }),
                }
            })
            .collect();
        let report = run(
            steps,
            &opts(2),
            &Outputs::default(),
            Arc::new(Quiet),
            |_| async {},
        )
        .await
        .unwrap();
        assert!(report.ok());
        assert_eq!(peak.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failure_skips_dependents_but_not_independent_branches() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let steps = vec![
            step("bad-cluster", &[], 10, log.clone()),
            step("nodes", &["bad-cluster"], 10, log.clone()),
            step("runtime", &["nodes"], 10, log.clone()),
            step("bucket", &[], 30, log.clone()),
        ];
        let mut seen = Vec::new();
        let report = run(steps, &opts(8), &Outputs::default(), Arc::new(Quiet), |r| {
            seen.push(r.id.clone());
            async {}
        })
        .await
        .unwrap();
        assert!(!report.ok());
        assert_eq!(report.failures().len(), 1);
        assert_eq!(report.count(|o| matches!(o, Outcome::Skipped(_))), 2);
        assert!(log.lock().unwrap().contains(&"end bucket".to_string()));
        assert!(!log.lock().unwrap().contains(&"start nodes".to_string()));
        assert_eq!(seen.len(), 4, "every step reported once: {seen:?}");
    }

    #[tokio::test]
    async fn cancellation_stops_launching_and_lets_in_flight_finish() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let steps = vec![
            step("slow", &[], 80, log.clone()),
            step("after", &["slow"], 10, log.clone()),
        ];
        let o = opts(8);
        let cancel = o.cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            cancel.cancel();
        });
        let report = run(steps, &o, &Outputs::default(), Arc::new(Quiet), |_| async {
        })
        .await
        .unwrap();
        assert!(report.interrupted);
        let log = log.lock().unwrap().clone();
        assert!(
            log.contains(&"end slow".to_string()),
            "in-flight step reached its end"
        );
        assert!(!log.contains(&"start after".to_string()));
    }

    #[tokio::test]
    async fn cancellation_stops_an_interruptible_step_at_once() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut check = step("check", &[], 5_000, log.clone());
        check.interruptible = true;
        let steps = vec![check, step("write", &[], 80, log.clone())];
        let mut o = opts(8);
        o.grace = Duration::from_secs(30);
        let cancel = o.cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            cancel.cancel();
        });
        let started = Instant::now();
        let report = run(steps, &o, &Outputs::default(), Arc::new(Quiet), |_| async {
        })
        .await
        .unwrap();
        assert!(report.interrupted);
        let log = log.lock().unwrap().clone();
        assert!(log.contains(&"end write".to_string()), "{log:?}");
        assert!(!log.contains(&"end check".to_string()), "{log:?}");
        let check = report.results.iter().find(|r| r.id == "check").unwrap();
        assert!(matches!(&check.outcome, Outcome::Skipped(why) if why == "interrupted"));
        // Neither the 30 s grace nor the 5 s check was waited out.
        assert!(started.elapsed() < Duration::from_secs(4));
    }

    #[test]
    fn cycles_are_reported_before_anything_runs() {
        let shape = vec![
            ("a".to_string(), vec!["b".to_string()]),
            ("b".to_string(), vec!["a".to_string()]),
        ];
        assert!(matches!(check_graph(&shape), Err(GraphError::Cycle(_))));
    }
}
