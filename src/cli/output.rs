//! How results look: a live view on a terminal, timestamped plain lines
//! for logs and CI, or one JSON event per line for machines.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use howdah::engine::Outcome;
use howdah::events::{Event, EventSink};
use howdah::ops::down::DownReport;
use howdah::ops::status::StatusReport;
use howdah::ops::up::UpReport;
use howdah::ops::Session;
use howdah::plan::Plan;
use howdah::runtime::DesiredObject;
use howdah::text::wrap;
use howdah_provider::{Action, Leftover};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{exit, OutputMode};

/// Colour for one stream: ✓ and done green, ✗ and failures red, waiting
/// yellow; nothing at all when off (`--color never`, NO_COLOR, a pipe).
#[derive(Clone, Copy)]
pub struct Paint(bool);

impl Paint {
    pub fn new(on: bool) -> Paint {
        Paint(on)
    }

    pub fn on(self) -> bool {
        self.0
    }

    fn wrap(self, code: &str, text: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub fn green(self, text: &str) -> String {
        self.wrap("32", text)
    }

    pub fn red(self, text: &str) -> String {
        self.wrap("31", text)
    }

    pub fn yellow(self, text: &str) -> String {
        self.wrap("33", text)
    }
}

/// `-q`: only failed steps and the summary reach the display.
pub struct ErrorsAndSummary(pub std::sync::Arc<dyn EventSink>);

impl EventSink for ErrorsAndSummary {
    fn emit(&self, event: &Event) {
        if matches!(event, Event::StepFailed { .. } | Event::Summary { .. }) {
            self.0.emit(event);
        }
    }
}

/// One JSON object per line on stdout.
pub struct JsonLines;

impl EventSink for JsonLines {
    fn emit(&self, event: &Event) {
        if let Ok(value) = serde_json::to_value(event) {
            json_line(value);
        }
    }
}

/// The version of the JSON event format (README "JSON events"); raised
/// when a field changes meaning or goes away, not when one is added.
pub const EVENT_SCHEMA: u32 = 1;

/// Prints one JSON event with the time it happened and the schema version.
pub fn json_line(mut event: serde_json::Value) {
    if let Some(map) = event.as_object_mut() {
        map.insert(
            "time".into(),
            serde_json::Value::String(
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            ),
        );
        map.insert("schema".into(), serde_json::Value::from(EVENT_SCHEMA));
    }
    if let Ok(line) = serde_json::to_string(&event) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

/// Timestamped lines on stdout, one per event worth a line.
pub struct PlainLines {
    paint: Paint,
}

impl PlainLines {
    pub fn new(paint: Paint) -> Self {
        PlainLines { paint }
    }
}

fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl EventSink for PlainLines {
    fn emit(&self, event: &Event) {
        let paint = self.paint;
        let line = match event {
            Event::Plan { plan } => {
                print_plan(plan);
                return;
            }
            Event::StepStarted {
                step,
                action,
                expected_s,
            } if action != "no-op" => {
                format!("{step}: {action} started (expected {})", secs(*expected_s))
            }
            Event::StepProgress { step, message } => {
                format!("{step}: {}", paint.yellow(message))
            }
            Event::StepFinished {
                step,
                action,
                elapsed_s,
            } if action != "no-op" || step.ends_with("verify") => {
                format!(
                    "{step}: {}",
                    paint.green(&format!(
                        "{} done in {}",
                        label(step, action),
                        secs(*elapsed_s)
                    ))
                )
            }
            Event::StepFailed {
                step,
                action,
                elapsed_s,
                error,
            } => {
                format!(
                    "{step}: {}",
                    paint.red(&format!(
                        "{action} FAILED after {}: {error}",
                        secs(*elapsed_s)
                    ))
                )
            }
            Event::StepSkipped { step, reason } => format!("{step}: skipped ({reason})"),
            Event::Warning { message } => paint.yellow(&format!("warning: {message}")),
            Event::Summary { message, .. } => message.clone(),
            _ => return,
        };
        outln!("{} {line}", now());
    }
}

/// indicatif bars, one per running step, with elapsed against expected,
/// under a header with the whole run's progress.
pub struct LiveView {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
    paint: Paint,
    overall: Mutex<Option<Overall>>,
}

/// The header: steps done of all, elapsed, and time left on the critical
/// path (what a 20-minute EKS run most needs at a glance).
struct Overall {
    bar: ProgressBar,
    plan: Plan,
    finished: std::collections::HashSet<String>,
    started: HashMap<String, std::time::Instant>,
}

impl Overall {
    fn refresh(&self) {
        let running: HashMap<String, f64> = self
            .started
            .iter()
            .filter(|(id, _)| !self.finished.contains(*id))
            .map(|(id, at)| (id.clone(), at.elapsed().as_secs_f64()))
            .collect();
        let left = self.plan.remaining_s(&self.finished, &running);
        self.bar.set_message(format!(
            "{}: {}/{} steps done · about {} left on the critical path",
            self.plan.command,
            self.finished.len(),
            self.plan.items.len(),
            secs(left)
        ));
    }
}

impl LiveView {
    pub fn new(paint: Paint) -> Self {
        LiveView {
            multi: MultiProgress::new(),
            bars: Mutex::new(HashMap::new()),
            paint,
            overall: Mutex::new(None),
        }
    }

    fn bar(&self, step: &str) -> Option<ProgressBar> {
        self.bars.lock().ok()?.get(step).cloned()
    }

    /// Ends a step's running row, if it had one: finished steps are
    /// printed once, above the running ones, in the order they ended
    /// (so a failure comes before the steps it made skip, and a redraw
    /// never repeats a finished row).
    fn take_bar(&self, step: &str) -> bool {
        let bar = self.bars.lock().ok().and_then(|mut b| b.remove(step));
        match bar {
            Some(bar) => {
                bar.finish_and_clear();
                true
            }
            None => false,
        }
    }

    /// Prints a finished row above the running ones, cut to the
    /// terminal's width with an ellipsis.
    fn row(&self, text: String) {
        let text = match stderr_width() {
            Some(width) => fit(&text, width),
            None => text,
        };
        let _ = self.multi.println(text);
    }

    /// The step-id column's width: the plan's longest id.
    fn ids(&self) -> usize {
        self.overall
            .lock()
            .ok()
            .and_then(|o| o.as_ref().map(|o| id_width(&o.plan)))
            .unwrap_or(24)
    }

    /// Records a step starting (`started`) or ending, and redraws the header.
    fn track(&self, step: &str, started: bool) {
        let Ok(mut overall) = self.overall.lock() else {
            return;
        };
        if let Some(o) = overall.as_mut() {
            if started {
                o.started
                    .entry(step.to_string())
                    .or_insert_with(std::time::Instant::now);
            } else {
                o.finished.insert(step.to_string());
            }
            o.refresh();
        }
    }
}

impl EventSink for LiveView {
    fn emit(&self, event: &Event) {
        match event {
            Event::Plan { plan } => {
                self.multi.suspend(|| print_plan(plan));
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{msg} · {elapsed} elapsed")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.enable_steady_tick(Duration::from_secs(1));
                let overall = Overall {
                    bar,
                    plan: plan.clone(),
                    finished: std::collections::HashSet::new(),
                    started: HashMap::new(),
                };
                overall.refresh();
                if let Ok(mut slot) = self.overall.lock() {
                    *slot = Some(overall);
                }
            }
            Event::StepStarted {
                step,
                action,
                expected_s,
            } => {
                self.track(step, true);
                if action == "no-op" && !step.ends_with("verify") {
                    return;
                }
                let action = label(step, action);
                let ids = self.ids();
                let bar = self.multi.add(ProgressBar::new_spinner());
                // The spinner is literal text to indicatif; colour is
                // ours to decide, not the terminal library's.
                let style = ProgressStyle::with_template(&format!(
                    "{} {{prefix:<{ids}}} {action:<8} {{elapsed:>4}} / ~{:<6} {{wide_msg}}",
                    self.paint.yellow("{spinner}"),
                    secs(*expected_s)
                ))
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
                bar.set_style(style);
                bar.set_prefix(step.clone());
                bar.enable_steady_tick(Duration::from_millis(120));
                if let Ok(mut bars) = self.bars.lock() {
                    bars.insert(step.clone(), bar);
                }
            }
            Event::StepProgress { step, message } => {
                self.track(step, true);
                if let Some(bar) = self.bar(step) {
                    let first = message.lines().next().unwrap_or_default();
                    // What the row's fixed columns leave (see StepStarted);
                    // a cut message ends in an ellipsis, not mid-word.
                    let room = stderr_width()
                        .map(|w| w.saturating_sub(self.ids() + RUNNING_ROW_FIXED))
                        .unwrap_or(usize::MAX);
                    bar.set_message(fit(first, room));
                }
            }
            Event::StepFinished {
                step,
                action,
                elapsed_s,
            } => {
                self.track(step, false);
                // A step that showed no row (an unchanged object) gets none.
                if self.take_bar(step) {
                    let ids = self.ids();
                    self.row(format!(
                        "{} {step:<ids$} {:<8} {:>4}",
                        self.paint.green("✓"),
                        label(step, action),
                        secs(*elapsed_s)
                    ));
                }
            }
            Event::StepFailed {
                step,
                action,
                error,
                elapsed_s,
            } => {
                self.track(step, false);
                self.take_bar(step);
                let ids = self.ids();
                let width = stderr_width();
                let mut text = format!(
                    "{} {step:<ids$} {:<8} {:>4} {}",
                    self.paint.red("✗"),
                    label(step, action),
                    secs(*elapsed_s),
                    self.paint.red("FAILED")
                );
                if let Some(width) = width {
                    text = fit(&text, width);
                }
                // The whole error, once (the summary only names the
                // step), in one print so no other row lands inside it.
                for line in error.lines().filter(|l| !l.trim().is_empty()) {
                    let line = wrap(line.trim_end(), 4, width.unwrap_or(usize::MAX), 6);
                    text.push_str(&format!("\n    {line}"));
                }
                let _ = self.multi.println(text);
            }
            Event::StepSkipped { step, reason } => {
                self.track(step, false);
                self.take_bar(step);
                let ids = self.ids();
                self.row(format!("- {step:<ids$} skipped ({reason})"));
            }
            Event::Warning { message } => {
                let width = stderr_width().unwrap_or(usize::MAX);
                let text = wrap(&format!("warning: {message}"), 0, width, 2);
                let _ = self.multi.println(self.paint.yellow(&text));
            }
            Event::Summary { message, .. } => {
                // The bars are done: stop redrawing them, so the summary
                // printed below is not drawn over.
                if let Ok(Some(overall)) = self.overall.lock().as_deref() {
                    overall.bar.finish();
                }
                self.multi.set_draw_target(ProgressDrawTarget::hidden());
                outln!("{message}");
            }
        }
    }
}

fn secs(s: f64) -> String {
    let s = s.round() as u64;
    if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// What a step's row calls its action: the verification step does not
/// change anything, but it is not "no-op" either.
fn label<'a>(step: &str, action: &'a str) -> &'a str {
    if step.ends_with("verify") && action == "no-op" {
        "check"
    } else {
        action
    }
}

fn symbol(action: Action) -> &'static str {
    match action {
        Action::Create => "+",
        Action::Update => "~",
        Action::Replace => "±",
        Action::Delete => "-",
        Action::Keep => "=",
    }
}

/// On a terminal, before `down`: what it will delete, data first and in
/// red, then asks. Deleting data takes the stack's name typed back;
/// anything else a `yes`. Nothing to delete asks nothing. True to go on.
pub fn confirm_destroy(plan: &Plan, stack: &str, paint: Paint) -> bool {
    let deleted: Vec<_> = plan
        .items
        .iter()
        .filter(|i| i.action == Action::Delete)
        .collect();
    if deleted.is_empty() {
        return true;
    }
    let (data, rest): (Vec<_>, Vec<_>) = deleted.into_iter().partition(|i| i.data);
    let mut err = std::io::stderr();
    if !data.is_empty() {
        let _ = writeln!(err, "{}", paint.red("These delete data, for good:"));
        for item in &data {
            let _ = writeln!(
                err,
                "  {}",
                paint.red(&format!("- {}  {}", item.id, item.reason))
            );
        }
    }
    let _ = writeln!(err, "These are deleted:");
    for item in &rest {
        let _ = writeln!(err, "  - {}  {}", item.id, item.reason);
    }
    let (question, wanted) = if data.is_empty() {
        ("Delete them? Type yes: ".to_string(), "yes")
    } else {
        (
            format!("Delete them and the data? Type the stack name ({stack}): "),
            stack,
        )
    };
    let _ = write!(err, "{question}");
    let _ = err.flush();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).is_ok() && answer.trim() == wanted
}

/// Columns of a running row before its message: the spinner, the id
/// column's padding, the action, elapsed, " / ~" and the expected time,
/// and one to spare so the terminal never wraps.
const RUNNING_ROW_FIXED: usize = 2 + 1 + 8 + 1 + 4 + 4 + 6 + 1 + 1;

/// `text` in at most `width` columns, ending in "…" when cut (colour
/// escapes kept and not counted).
fn fit(text: &str, width: usize) -> String {
    console::truncate_str(text, width, "…").into_owned()
}

/// The width of the terminal the live view draws on (stderr).
fn stderr_width() -> Option<usize> {
    console::Term::stderr()
        .size_checked()
        .map(|(_, cols)| usize::from(cols))
        .filter(|cols| *cols >= 40)
}

/// The width of the terminal stdout goes to, if it is one.
pub fn terminal_width() -> Option<usize> {
    console::Term::stdout()
        .size_checked()
        .map(|(_, cols)| usize::from(cols))
        .filter(|cols| *cols >= 40)
}

/// The width of the step-id column: the longest id of the plan.
fn id_width(plan: &Plan) -> usize {
    plan.items
        .iter()
        .map(|i| i.id.chars().count())
        .max()
        .unwrap_or(0)
        .max(16)
}

/// The plan as a reviewer reads it: on a terminal, reasons wrap at word
/// boundaries under their own column.
pub fn print_plan(plan: &Plan) {
    print_plan_at(plan, terminal_width());
}

fn print_plan_at(plan: &Plan, width: Option<usize>) {
    let mut out = String::new();
    out.push_str(&format!(
        "Plan for stack `{}` ({} on {}):\n\n",
        plan.stack, plan.command, plan.target
    ));
    let ids = id_width(plan);
    for item in &plan.items {
        let expected = if item.action.is_change() {
            format!("~{}", secs(item.expected_s))
        } else {
            String::new()
        };
        let head = format!(
            "  {} {:<ids$} {:<8} {:<7} ",
            symbol(item.action),
            item.id,
            label(&item.id, item.action.as_str()),
            expected,
        );
        let column = head.chars().count();
        let reason = match width {
            Some(width) => wrap(&item.reason, column, width, column),
            None => item.reason.clone(),
        };
        out.push_str(&format!("{head}{reason}\n"));
        for f in &item.fields {
            let line = match (&f.old, &f.new) {
                (None, Some(new)) if new == "(new object)" => format!("+ {}", f.path),
                (Some(old), None) if old == "(exists)" => format!("- {}", f.path),
                (Some(old), Some(new)) => format!("~ {}: {old} → {new}", f.path),
                (None, Some(new)) => format!("+ {}: {new}", f.path),
                (Some(old), None) => format!("- {}: {old}", f.path),
                (None, None) => format!("~ {}", f.path),
            };
            let line = match width {
                Some(width) => wrap(&line, 8, width, 10),
                None => line,
            };
            out.push_str(&format!("        {line}\n"));
        }
        for (name, doc) in &item.documents {
            out.push_str(&format!("        {name}:\n"));
            for l in serde_json::to_string_pretty(doc)
                .unwrap_or_default()
                .lines()
            {
                out.push_str(&format!("          {l}\n"));
            }
        }
    }
    out.push('\n');
    if plan.has_changes() {
        out.push_str(&format!(
            "{} to create, {} to update, {} to replace, {} to delete, {} unchanged.\n",
            plan.count(Action::Create),
            plan.count(Action::Update),
            plan.count(Action::Replace),
            plan.count(Action::Delete),
            plan.count(Action::Keep)
        ));
        let expected = format!(
            "Expected time: {} along the critical path ({}); {} if run one step after another.",
            secs(plan.critical_path_s),
            plan.critical_path.join(" → "),
            secs(plan.sequential_s)
        );
        let expected = match width {
            Some(width) => wrap(&expected, 0, width, 2),
            None => expected,
        };
        out.push_str(&format!("{expected}\n"));
    } else {
        out.push_str("No changes. Everything is as the stack file says.\n");
    }
    out!("{out}");
    let _ = std::io::stdout().flush();
}

/// A stack file's problems with the source underlined (miette), falling
/// back to the one-line-per-problem form if rendering fails.
pub fn spec_report(error: &howdah::spec::SpecError, paint: Paint) {
    let theme = if paint.on() {
        miette::GraphicalTheme::unicode()
    } else {
        miette::GraphicalTheme::unicode_nocolor()
    };
    let mut out = String::new();
    match miette::GraphicalReportHandler::new_themed(theme).render_report(&mut out, error) {
        Ok(()) => eprintln!("{out}"),
        Err(_) => eprintln!("{error}"),
    }
}

/// A stack file's problems as one JSON event.
pub fn invalid(error: &howdah::spec::SpecError) {
    let problems: Vec<serde_json::Value> = error
        .problems()
        .iter()
        .map(|p| {
            serde_json::json!({
                "line": p.line, "column": p.column, "path": p.path,
                "message": p.message, "help": p.help,
            })
        })
        .collect();
    json_line(
        serde_json::json!({"event": "invalid", "file": error.file_name(), "problems": problems}),
    );
}

pub fn validated(mode: OutputMode, session: &Session) {
    let warnings = session.stack.pachyderm.warnings();
    if mode == OutputMode::Json {
        for message in &warnings {
            json_line(serde_json::json!({"event": "warning", "message": message}));
        }
        json_line(serde_json::json!({"event": "valid", "valid": true,
            "stack": session.stack.name, "target": session.provider.name()}));
    } else {
        for message in &warnings {
            eprintln!("warning: {message}");
        }
        outln!(
            "{}: valid (stack `{}`, target {})",
            session.spec_path.display(),
            session.stack.name,
            session.provider.name()
        );
    }
}

/// Manifests as a multi-document YAML stream.
pub fn manifests(objects: &[DesiredObject]) {
    let mut out = String::new();
    for d in objects {
        out.push_str(&format!("---\n# component: {}\n", d.component.name()));
        out.push_str(&serde_norway::to_string(&d.object).unwrap_or_default());
    }
    out!("{out}");
}

/// What to do with a stack that is up: reach pachd, point pachctl at it,
/// reach the cluster, look again.
fn next_steps(session: &Session) -> String {
    let file = session.spec_path.display();
    let stack = &session.stack;
    let mut lines = vec![
        "Next:".to_string(),
        format!(
            "  howdah console -f {file}          forwards pachd to localhost:30650{}",
            match (stack.pachyderm.console.enabled, stack.pachyderm.proxy_enabled()) {
                (true, true) => " and the console (with file preview) to http://localhost:4000",
                (true, false) => " and the console to http://localhost:4000",
                (false, true) => " and pachd's HTTP API to http://localhost:4000",
                (false, false) => "",
            }
        ),
        "  pachctl connect grpc://localhost:30650   points pachctl at it (while `howdah console` runs)".to_string(),
    ];
    if stack.target.is_cloud() {
        lines.push(format!(
            "  howdah kubeconfig -f {file}       adds a kubectl context for the cluster"
        ));
    }
    lines.push(format!(
        "  howdah status -f {file} --deep    checks every part, and pachd's storage, again"
    ));
    lines.join("\n")
}

/// "runtime.pachd failed" or "2 steps failed: a, b".
fn failed_steps(failed: &[&howdah::engine::StepResult]) -> String {
    let ids: Vec<&str> = failed.iter().map(|f| f.id.as_str()).collect();
    match ids.as_slice() {
        [] => "a step did not finish".to_string(),
        [one] => format!("{one} failed"),
        many => format!("{} steps failed: {}", many.len(), many.join(", ")),
    }
}

pub fn up_done(sink: &dyn EventSink, report: &UpReport, session: &Session) -> u8 {
    let run = &report.run;
    let failed = run.failures();
    let changed = run
        .results
        .iter()
        .filter(|r| r.action.is_change() && matches!(r.outcome, Outcome::Done(_)))
        .count();
    let verified = run
        .results
        .iter()
        .find(|r| r.id == howdah::runtime::VERIFY_ID)
        .and_then(|r| match &r.outcome {
            Outcome::Done(v) => {
                let mut text = format!(
                    "pachd {} is {}",
                    v["version"].as_str().unwrap_or("?"),
                    v["health"].as_str().unwrap_or("?")
                );
                if let Some(ms) = v["storage"]["millis"].as_u64() {
                    text.push_str(&format!(
                        ", its storage round trip took {:.2}s",
                        ms as f64 / 1000.0
                    ));
                }
                Some(text)
            }
            _ => None,
        });
    let message = if run.interrupted {
        "up interrupted: state saved; run `howdah up` again to carry on".to_string()
    } else if !failed.is_empty() {
        // Each error was shown with its step; here only which ones.
        let mut m = format!(
            "up failed: {} (the error is with the step above)",
            failed_steps(&failed)
        );
        m.push_str(
            "\nFix the cause and run `howdah up` again: it carries on from where it stopped.",
        );
        m
    } else if changed == 0 {
        format!(
            "up: no changes; {} ({}s)",
            verified.unwrap_or_default(),
            run.elapsed.as_secs()
        )
    } else {
        format!(
            "up: {changed} step(s) applied in {}; {}",
            secs(run.elapsed.as_secs_f64()),
            verified.unwrap_or_default()
        )
    };
    let message = if run.ok() {
        format!("{message}\n{}", next_steps(session))
    } else {
        message
    };
    sink.emit(&Event::Summary {
        command: "up".into(),
        ok: run.ok(),
        changed,
        failed: failed.len(),
        skipped: run.count(|o| matches!(o, Outcome::Skipped(_))),
        elapsed_s: run.elapsed.as_secs_f64(),
        message,
    });
    if run.interrupted {
        exit::INTERRUPTED
    } else if run.ok() {
        exit::OK
    } else {
        exit::FAILED
    }
}

pub fn down_done(mode: OutputMode, sink: &dyn EventSink, report: &DownReport, file: &Path) -> u8 {
    let run = &report.run;
    let leaked = report.leaked();
    let retained: Vec<_> = report.leftovers.iter().filter(|l| l.retained).collect();
    // The command this run was: what is left of it goes by running it
    // again, never by asking for a flag it already had.
    let this_run = format!(
        "howdah down -f {}{}",
        file.display(),
        if report.delete_data {
            " --delete-data"
        } else {
            ""
        }
    );
    let mut message = if run.interrupted {
        format!("down interrupted: state saved; run `{this_run}` again to carry on")
    } else if !run.ok() {
        format!(
            "down failed: {} (the error is with the step above); fix the cause and run the same command again (`{this_run}`): it carries on from where it stopped",
            failed_steps(&run.failures())
        )
    } else if leaked.is_empty() && retained.is_empty() {
        format!(
            "down: everything removed in {}; leak scan found nothing left",
            secs(run.elapsed.as_secs_f64())
        )
    } else if leaked.is_empty() {
        format!(
            "down: removed in {}; the leak scan found nothing leaked, but data is kept:",
            secs(run.elapsed.as_secs_f64())
        )
    } else {
        "down finished, but the leak scan found objects still there:".to_string()
    };
    // Providers name the stack file as `<stack file>`; this run knows it.
    let command = |text: &str| text.replace("<stack file>", &file.display().to_string());
    // Whether a `howdah down` hint is covered by running this one again:
    // the same command, or one without --delete-data when this had it.
    let covered = |hint: &str| {
        hint == this_run || (report.delete_data && format!("{hint} --delete-data") == this_run)
    };
    let mut again = false;
    for l in &leaked {
        let hint = command(&l.remove_with);
        let status = l
            .status
            .as_ref()
            .map(|s| format!(" ({s})"))
            .unwrap_or_default();
        if covered(&hint) {
            again = true;
            message.push_str(&format!("\n  LEFT  {} {}{status}", l.kind, l.name));
        } else {
            message.push_str(&format!(
                "\n  LEFT  {} {}{status} (remove with: {hint})",
                l.kind, l.name
            ));
        }
    }
    if again && run.ok() && !run.interrupted {
        message.push_str(&format!("\nRun `{this_run}` again to remove what is left."));
    }
    // Kept by the data policy: `down --delete-data` removes them. Kept by
    // the cluster (a volume's reclaim policy Retain): only by hand.
    let (by_policy, by_cluster): (Vec<&Leftover>, Vec<&Leftover>) = retained
        .iter()
        .copied()
        .partition(|l| l.remove_with.starts_with("howdah down"));
    if !by_policy.is_empty() {
        message.push_str("\nRetained on purpose (dataPolicy: retain):");
        for l in &by_policy {
            message.push_str(&format!("\n  KEPT  {} {}", l.kind, l.name));
        }
        message.push_str(&format!(
            "\nTo remove the data too: howdah down -f {} --delete-data (with --yes where there is no terminal to confirm on)",
            file.display()
        ));
    }
    if !by_cluster.is_empty() {
        message.push_str("\nKept by the cluster's reclaim policy (howdah does not delete them):");
        for l in &by_cluster {
            message.push_str(&format!(
                "\n  KEPT  {} {} (remove with: {})",
                l.kind,
                l.name,
                command(&l.remove_with)
            ));
        }
    }
    // The summary is the last event; what is left comes before it.
    if mode == OutputMode::Json {
        json_line(serde_json::json!({"event": "leftovers", "leftovers": report.leftovers}));
    }
    sink.emit(&Event::Summary {
        command: "down".into(),
        ok: run.ok() && leaked.is_empty(),
        changed: run
            .results
            .iter()
            .filter(|r| r.action == Action::Delete)
            .count(),
        failed: run.failures().len(),
        skipped: run.count(|o| matches!(o, Outcome::Skipped(_))),
        elapsed_s: run.elapsed.as_secs_f64(),
        message,
    });
    if run.interrupted {
        exit::INTERRUPTED
    } else if !run.ok() {
        exit::FAILED
    } else if !leaked.is_empty() {
        exit::LEAKED
    } else {
        exit::OK
    }
}

pub fn status(mode: OutputMode, report: &StatusReport, paint: Paint) {
    if mode == OutputMode::Json {
        outln!(
            "{}",
            serde_json::to_string_pretty(report).unwrap_or_default()
        );
        return;
    }
    outln!(
        "Stack `{}`: {}",
        report.stack,
        if report.healthy {
            "healthy"
        } else {
            "NOT healthy"
        }
    );
    for p in &report.parts {
        let mark = match p.state.as_str() {
            "healthy" => paint.green("✓"),
            "disabled" | "skipped" => "·".to_string(),
            _ => paint.red("✗"),
        };
        outln!("  {mark} {:<24} {:<10} {}", p.id, p.state, p.detail);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Capture(Mutex<Vec<String>>);

    impl EventSink for Capture {
        fn emit(&self, event: &Event) {
            if let Event::Summary { message, .. } = event {
                self.0
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(message.clone());
            }
        }
    }

    /// Reasons wrap at spaces under their own column, never past the width.
    #[test]
    fn plan_lines_fit_the_terminal_and_break_between_words() {
        let long = "upgrade pachd/pachd 2.11.5 → 2.11.6, upgrade pachw/pachw 2.11.5 → \
                    2.11.6 (new images: the pods restart); 4 field(s) differ";
        for width in [80, 120] {
            let text = wrap(long, 40, width, 40);
            for (i, line) in text.lines().enumerate() {
                let room = if i == 0 { width - 40 } else { width };
                assert!(line.chars().count() <= room, "{width}: {line:?}");
            }
            let words: Vec<&str> = long.split(' ').collect();
            let rewrapped: Vec<&str> = text.split_whitespace().collect();
            assert_eq!(rewrapped, words, "no word is cut");
        }
        assert_eq!(label("runtime.verify", "no-op"), "check");
        assert_eq!(label("runtime.pachd", "no-op"), "no-op");
    }

    /// What is left is removed with a command the user can paste: the
    /// stack file as given, never a `<stack file>` placeholder.
    #[test]
    fn leftovers_name_the_real_stack_file() {
        let report = DownReport {
            plan: Plan::new("demo", "down", "aws", Vec::new()),
            run: howdah::engine::RunReport {
                results: Vec::new(),
                interrupted: false,
                elapsed: Duration::from_secs(3),
            },
            leftovers: vec![Leftover {
                kind: "aws.s3_bucket".into(),
                name: "demo-data".into(),
                retained: false,
                remove_with: "howdah down -f <stack file> --delete-data".into(),
                status: None,
            }],
            delete_data: false,
        };
        let sink = Capture(Mutex::new(Vec::new()));
        let code = down_done(
            OutputMode::Plain,
            &sink,
            &report,
            Path::new("stacks/demo.yaml"),
        );
        assert_eq!(code, exit::LEAKED);
        let messages = sink.0.lock().unwrap_or_else(|p| p.into_inner()).join("\n");
        assert!(
            messages.contains("howdah down -f stacks/demo.yaml --delete-data"),
            "{messages}"
        );
        assert!(!messages.contains("<stack file>"), "{messages}");
    }

    /// A failed `down --delete-data`: what is left is listed with what its
    /// cloud says of it, apart from the command; the command is this run's
    /// own, to run again, not a suggestion of the flag it already had.
    #[test]
    fn a_failed_down_lists_status_apart_and_asks_to_run_it_again() {
        let failed = howdah::engine::StepResult {
            id: "aws.eks_cluster".into(),
            action: Action::Delete,
            outcome: Outcome::Failed("deleting EKS cluster howdah-demo: AccessDenied".into()),
            elapsed: Duration::from_secs(1),
        };
        let left = |kind: &str, name: &str, how: &str, status: Option<&str>| Leftover {
            kind: kind.into(),
            name: name.into(),
            retained: false,
            remove_with: how.into(),
            status: status.map(str::to_string),
        };
        let report = DownReport {
            plan: Plan::new("demo", "down", "aws", Vec::new()),
            run: howdah::engine::RunReport {
                results: vec![failed],
                interrupted: false,
                elapsed: Duration::from_secs(3),
            },
            leftovers: vec![
                left(
                    "aws.eks_cluster",
                    "howdah-demo",
                    "howdah down -f <stack file>",
                    Some("EKS reports it ACTIVE"),
                ),
                left(
                    "aws.s3_bucket",
                    "demo-data",
                    "howdah down -f <stack file> --delete-data",
                    None,
                ),
            ],
            delete_data: true,
        };
        let sink = Capture(Mutex::new(Vec::new()));
        let code = down_done(
            OutputMode::Plain,
            &sink,
            &report,
            Path::new("stacks/demo.yaml"),
        );
        assert_eq!(code, exit::FAILED);
        let messages = sink.0.lock().unwrap_or_else(|p| p.into_inner()).join("\n");
        let cluster = messages
            .lines()
            .find(|l| l.contains("LEFT  aws.eks_cluster howdah-demo"))
            .unwrap_or_else(|| panic!("{messages}"));
        assert!(cluster.contains("(EKS reports it ACTIVE)"), "{cluster}");
        assert!(!cluster.contains("remove with"), "{cluster}");
        assert!(
            messages.contains(
                "run the same command again (`howdah down -f stacks/demo.yaml --delete-data`)"
            ),
            "{messages}"
        );
        assert!(!messages.contains("remove with"), "{messages}");
        assert!(!messages.contains("To remove the data too"), "{messages}");
        assert!(!messages.contains("<stack file>"), "{messages}");
    }
}
