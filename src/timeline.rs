//! Where the time of the last `up` or `down` went: a Gantt chart of its
//! steps from the times the state file records, with the critical path
//! (the chain of steps, each waiting on the one before, that decided when
//! the run ended) marked. Printed for a terminal, or drawn as SVG.

use chrono::{DateTime, Utc};

use crate::state::{RunRecord, StepTiming};

/// One step's bar, in seconds from the run's start.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub id: String,
    pub action: String,
    /// done, failed or skipped.
    pub outcome: String,
    pub start_s: f64,
    pub end_s: f64,
    pub critical: bool,
}

/// The chart of one run.
#[derive(Debug, Clone)]
pub struct Timeline {
    pub command: String,
    pub started_at: DateTime<Utc>,
    /// From the run's start to its last step's end.
    pub total_s: f64,
    /// In the order the steps started.
    pub bars: Vec<Bar>,
    /// Unchanged steps that took no time and are not on the critical
    /// path, left out of the chart.
    pub hidden: usize,
    /// The critical path, first to last.
    pub critical_path: Vec<String>,
}

/// A step that changed nothing and took less than this is not drawn.
const INSTANT_S: f64 = 0.05;

/// The chart of a recorded run; `None` when the run recorded no steps
/// (a state written by an older howdah, or a run stopped before any).
pub fn of_run(run: &RunRecord) -> Option<Timeline> {
    if run.steps.is_empty() {
        return None;
    }
    let critical_path = critical_path(&run.steps);
    let origin = run
        .steps
        .iter()
        .map(|s| s.started_at)
        .min()
        .unwrap_or(run.started_at)
        .min(run.started_at);
    let at = |t: DateTime<Utc>| (t - origin).num_milliseconds().max(0) as f64 / 1000.0;
    let mut steps: Vec<&StepTiming> = run.steps.iter().collect();
    steps.sort_by(|a, b| a.started_at.cmp(&b.started_at).then(a.id.cmp(&b.id)));
    let mut hidden = 0;
    let mut bars = Vec::new();
    for s in steps {
        let (start_s, end_s) = (at(s.started_at), at(s.finished_at));
        let instant = s.action == "no-op" && s.outcome == "done" && end_s - start_s < INSTANT_S;
        // A step on the critical path is drawn however short: the path
        // names it.
        if instant && !critical_path.contains(&s.id) {
            hidden += 1;
            continue;
        }
        bars.push(Bar {
            id: s.id.clone(),
            action: s.action.clone(),
            outcome: s.outcome.clone(),
            start_s,
            end_s: end_s.max(start_s),
            critical: critical_path.contains(&s.id),
        });
    }
    let total_s = run
        .steps
        .iter()
        .map(|s| at(s.finished_at))
        .fold(0.0, f64::max);
    Some(Timeline {
        command: run.command.clone(),
        started_at: origin,
        total_s,
        bars,
        hidden,
        critical_path,
    })
}

/// From the step that ended last, back through the dependency each step
/// waited for longest (the one that ended last), to a step that waited
/// for nothing in this run. Skipped steps never ran and are not on it.
fn critical_path(steps: &[StepTiming]) -> Vec<String> {
    let ran = |s: &&StepTiming| s.outcome != "skipped";
    let by_id = |id: &str| steps.iter().filter(ran).find(|s| s.id == id);
    let Some(mut cursor) = steps.iter().filter(ran).max_by_key(|s| s.finished_at) else {
        return Vec::new();
    };
    let mut path = vec![cursor.id.clone()];
    while let Some(before) = cursor
        .depends_on
        .iter()
        .filter_map(|d| by_id(d))
        .max_by_key(|s| s.finished_at)
    {
        // A dependency graph has no cycles; a damaged record might.
        if path.contains(&before.id) {
            break;
        }
        path.push(before.id.clone());
        cursor = before;
    }
    path.reverse();
    path
}

fn secs(s: f64) -> String {
    if s >= 60.0 {
        let s = s.round() as u64;
        format!("{}m{:02}s", s / 60, s % 60)
    } else if s >= 10.0 {
        format!("{s:.0}s")
    } else {
        format!("{s:.1}s")
    }
}

/// The chart as text, `width` columns wide: a row per step with its bar
/// on a common time axis; critical-path rows start with `*` and their bar
/// is drawn solid (`█`), the others light (`░`); a failed step ends in
/// `✗`.
pub fn text(t: &Timeline, width: usize) -> String {
    let ids = t
        .bars
        .iter()
        .map(|b| b.id.chars().count())
        .max()
        .unwrap_or(0)
        .max(4);
    // "* id  " before the bar, " 12m05s ✗" after it.
    let cols = width.saturating_sub(ids + 4 + 10).max(10);
    let scale = if t.total_s > 0.0 {
        cols as f64 / t.total_s
    } else {
        0.0
    };
    let heading = format!(
        "Last `{}` of this stack, started {}: {} in all.",
        t.command,
        t.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
        secs(t.total_s)
    );
    let mut out = format!("{}\n\n", crate::text::wrap(&heading, 0, width, 0));
    // The axis: 0 at the left, the total at the right, the middle between.
    let mut axis = vec![' '; cols + 8];
    for (pos, label) in [
        (0, "0s".to_string()),
        (cols / 2, secs(t.total_s / 2.0)),
        (cols.saturating_sub(1), secs(t.total_s)),
    ] {
        let start = pos.saturating_sub(if pos == 0 { 0 } else { label.len() / 2 });
        for (i, c) in label.chars().enumerate() {
            if let Some(slot) = axis.get_mut(start + i) {
                *slot = c;
            }
        }
    }
    out.push_str(&format!(
        "  {:ids$}  {}\n",
        "",
        axis.iter().collect::<String>().trim_end()
    ));
    for b in &t.bars {
        let from = ((b.start_s * scale).floor() as usize).min(cols.saturating_sub(1));
        let to = ((b.end_s * scale).ceil() as usize).clamp(from + 1, cols);
        let fill = if b.critical { '█' } else { '░' };
        let bar: String = (0..cols)
            .map(|i| if i >= from && i < to { fill } else { ' ' })
            .collect();
        let tail = match b.outcome.as_str() {
            "failed" => format!("{} ✗", secs(b.end_s - b.start_s)),
            "skipped" => "skipped".to_string(),
            _ => secs(b.end_s - b.start_s),
        };
        out.push_str(&format!(
            "{} {:<ids$}  {} {tail}\n",
            if b.critical { '*' } else { ' ' },
            b.id,
            bar.trim_end()
        ));
    }
    out.push('\n');
    if t.hidden > 0 {
        let hidden = format!(
            "{} unchanged step(s) took no time and are not drawn.",
            t.hidden
        );
        out.push_str(&crate::text::wrap(&hidden, 0, width, 0));
        out.push('\n');
    }
    let path = format!("* critical path: {}", t.critical_path.join(" → "));
    out.push_str(&crate::text::wrap(&path, 0, width, 4));
    out.push('\n');
    out
}

/// The chart as an SVG document (plotters' SVG backend): a bar per step
/// on a time axis in seconds, the critical path in red.
pub fn svg(t: &Timeline) -> Result<String, String> {
    use plotters::prelude::*;

    let rows = t.bars.len().max(1);
    let height = 120 + 28 * rows as u32;
    let mut doc = String::new();
    {
        let root = SVGBackend::with_string(&mut doc, (960, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let x_end = if t.total_s > 0.0 {
            t.total_s * 1.02
        } else {
            1.0
        };
        let ids: Vec<String> = t.bars.iter().map(|b| b.id.clone()).collect();
        let label_area = ids.iter().map(|i| i.len()).max().unwrap_or(8) as u32 * 8 + 20;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!(
                    "howdah {}: {} in all; critical path in red",
                    t.command,
                    secs(t.total_s)
                ),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(label_area)
            .build_cartesian_2d(0.0..x_end, (0..rows as i32).into_segmented())
            .map_err(|e| e.to_string())?;
        // Row 0 is drawn at the top: plotters' y grows upward.
        let row_of = |i: usize| rows as i32 - 1 - i as i32;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc("seconds since the run started")
            .y_labels(rows)
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(y) => {
                    let i = rows as i32 - 1 - *y;
                    usize::try_from(i)
                        .ok()
                        .and_then(|i| ids.get(i).cloned())
                        .unwrap_or_default()
                }
                _ => String::new(),
            })
            .draw()
            .map_err(|e| e.to_string())?;
        let red = RGBColor(0xd6, 0x27, 0x28);
        let blue = RGBColor(0x4c, 0x78, 0xa8);
        chart
            .draw_series(t.bars.iter().enumerate().map(|(i, b)| {
                let y = row_of(i);
                let colour = if b.critical { red } else { blue };
                // A bar of no width still shows as a sliver.
                let end = b.end_s.max(b.start_s + x_end / 400.0);
                Rectangle::new(
                    [
                        (b.start_s, SegmentValue::Exact(y)),
                        (end, SegmentValue::Exact(y + 1)),
                    ],
                    colour
                        .mix(if b.outcome == "skipped" { 0.25 } else { 0.85 })
                        .filled(),
                )
            }))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(t.bars.iter().enumerate().map(|(i, b)| {
                let label = match b.outcome.as_str() {
                    "failed" => format!("{} {} (failed)", b.action, secs(b.end_s - b.start_s)),
                    "skipped" => "skipped".to_string(),
                    _ => format!("{} {}", b.action, secs(b.end_s - b.start_s)),
                };
                Text::new(
                    label,
                    (b.end_s + x_end / 200.0, SegmentValue::CenterOf(row_of(i))),
                    ("sans-serif", 13),
                )
            }))
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(id: &str, deps: &[&str], from_s: i64, to_s: i64, outcome: &str) -> StepTiming {
        let t0 = DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        StepTiming {
            id: id.into(),
            action: "create".into(),
            outcome: outcome.into(),
            started_at: t0 + chrono::Duration::seconds(from_s),
            finished_at: t0 + chrono::Duration::seconds(to_s),
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
        }
    }

    fn run(steps: Vec<StepTiming>) -> RunRecord {
        RunRecord {
            command: "up".into(),
            started_at: steps[0].started_at,
            finished_at: None,
            ok: true,
            interrupted: false,
            steps,
        }
    }

    #[test]
    fn the_critical_path_is_the_chain_that_ended_last() {
        // The bucket is quick and the runtime waits on both; the path
        // runs through the slow cluster, not the bucket.
        let r = run(vec![
            step("aws.bucket", &[], 0, 5, "done"),
            step("aws.network", &[], 0, 60, "done"),
            step("aws.cluster", &["aws.network"], 60, 660, "done"),
            step(
                "runtime.pachd",
                &["aws.cluster", "aws.bucket"],
                660,
                720,
                "done",
            ),
        ]);
        let t = of_run(&r).unwrap();
        assert_eq!(
            t.critical_path,
            ["aws.network", "aws.cluster", "runtime.pachd"]
        );
        assert_eq!(t.total_s, 720.0);
        let bucket = t.bars.iter().find(|b| b.id == "aws.bucket").unwrap();
        assert!(!bucket.critical);
    }

    #[test]
    fn text_rows_fit_the_width_and_mark_the_path() {
        let r = run(vec![
            step("aws.network", &[], 0, 60, "done"),
            step("aws.bucket", &[], 0, 5, "done"),
            step("aws.cluster", &["aws.network"], 60, 660, "failed"),
            step("runtime.pachd", &["aws.cluster"], 660, 660, "skipped"),
        ]);
        let t = of_run(&r).unwrap();
        let shown = text(&t, 80);
        for line in shown.lines() {
            assert!(line.chars().count() <= 80, "{line:?}");
        }
        let cluster = shown.lines().find(|l| l.contains("aws.cluster")).unwrap();
        assert!(cluster.starts_with('*') && cluster.contains('█'), "{shown}");
        assert!(cluster.ends_with("10m00s ✗"), "{cluster}");
        let bucket = shown.lines().find(|l| l.contains("aws.bucket")).unwrap();
        assert!(bucket.starts_with(' ') && bucket.contains('░'), "{shown}");
        // The bucket's 5 s of 660 s is a sliver at the left, the cluster's
        // bar starts about a tenth of the way in.
        let bar_start = |l: &str| l.find(['█', '░']).unwrap();
        assert!(bar_start(cluster) > bar_start(bucket), "{shown}");
        assert!(shown.contains("skipped"), "{shown}");
        assert!(
            shown.contains("critical path: aws.network → aws.cluster"),
            "{shown}"
        );
        // Narrow: the path wraps between steps rather than overflowing.
        let narrow = text(&t, 40);
        for line in narrow
            .lines()
            .filter(|l| !l.contains('█') && !l.contains('░'))
        {
            assert!(line.chars().count() <= 40, "{line:?}");
        }
        assert!(narrow.contains("\n    aws.cluster"), "{narrow}");
    }

    #[test]
    fn unchanged_instant_steps_are_counted_not_drawn() {
        let mut keep = step("runtime.rbac", &[], 0, 0, "done");
        keep.action = "no-op".into();
        // Unchanged too, but the path runs through it: drawn.
        let mut cloud = step("aws.cluster_cloud_objects", &[], 0, 0, "done");
        cloud.action = "no-op".into();
        let r = run(vec![
            cloud,
            step(
                "runtime.pachd",
                &["aws.cluster_cloud_objects"],
                0,
                30,
                "done",
            ),
            keep,
        ]);
        let t = of_run(&r).unwrap();
        assert_eq!(t.bars.len(), 2, "{:?}", t.bars);
        assert_eq!(t.hidden, 1);
        assert!(text(&t, 100).contains("1 unchanged step(s)"));
        assert!(text(&t, 100).contains("* aws.cluster_cloud_objects"));
    }

    #[test]
    fn svg_has_a_bar_and_a_label_per_step() {
        let r = run(vec![
            step("aws.network", &[], 0, 60, "done"),
            step("aws.cluster", &["aws.network"], 60, 660, "done"),
            step("aws.bucket", &[], 0, 5, "done"),
        ]);
        let doc = svg(&of_run(&r).unwrap()).unwrap();
        assert!(doc.starts_with("<svg"), "{}", &doc[..80.min(doc.len())]);
        for id in ["aws.network", "aws.cluster", "aws.bucket"] {
            assert!(doc.contains(id), "{id} not labelled");
        }
        // Two critical bars in red, one other in blue.
        assert_eq!(doc.matches("#D62728").count(), 2, "{doc}");
        assert_eq!(doc.matches("#4C78A8").count(), 1, "{doc}");
    }

    #[test]
    fn a_run_without_recorded_steps_has_no_chart() {
        let mut r = run(vec![step("a", &[], 0, 1, "done")]);
        r.steps.clear();
        assert!(of_run(&r).is_none());
    }
}
