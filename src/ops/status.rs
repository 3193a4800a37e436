//! `status`: the live health of every part of the stack, read-only.

use std::sync::Arc;

use howdah_provider::{Action, NoProgress, Outputs, StepContext};
use serde::Serialize;

use super::up::up_graph;
use super::{OpsError, Options, Session};
use crate::runtime::chart::Component;
use crate::runtime::component::{Verify, VERIFY_SKIPPED};
use crate::runtime::{step_id, VERIFY_ID};

/// How long `status` keeps asking a pachd that does not answer at once.
const STATUS_VERIFY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// One part's health.
#[derive(Debug, Clone, Serialize)]
pub struct PartStatus {
    pub id: String,
    /// healthy, missing, drifted, not-ready, disabled, skipped, error.
    pub state: String,
    pub detail: String,
}

/// The whole stack's health.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub stack: String,
    pub healthy: bool,
    pub parts: Vec<PartStatus>,
}

/// Reads every part and checks pachd, within `--timeout` and until
/// interrupted.
pub async fn status(session: &Session, opts: &Options) -> Result<StatusReport, OpsError> {
    super::bounded(opts, "reading the status", read_status(session, opts)).await
}

async fn read_status(session: &Session, opts: &Options) -> Result<StatusReport, OpsError> {
    let recorded = session.recorded_state().await?;
    session.provider.preflight().await?;
    let outputs = Outputs::default();
    // Verification is skipped when asked, or when the last `up` that got
    // to it skipped it (`up --no-verify`): a check never made is never
    // reported healthy, and a failed one is asked again.
    let mut skipped_by_up = false;
    if let Some(state) = recorded {
        for (id, record) in state.resources {
            if id == VERIFY_ID {
                skipped_by_up =
                    record.status == "applied" && record.outputs.get(VERIFY_SKIPPED).is_some();
            }
            outputs.set(&id, record.outputs);
        }
    }
    let (rt, resources) = up_graph(session, opts, &outputs);
    let ctx = StepContext {
        outputs: outputs.clone(),
        progress: Arc::new(NoProgress),
    };
    let skip_verify = (!opts.verify)
        .then_some("--no-verify")
        .or(skipped_by_up.then_some(
            "the last `howdah up` ran with --no-verify; `howdah up` without it checks pachd",
        ));
    let mut parts = Vec::new();
    for r in &resources {
        if r.id() == VERIFY_ID {
            continue;
        }
        let part = match r.plan_up(&ctx).await {
            Ok(c) => {
                let state = match c.action {
                    Action::Keep if c.reason.starts_with("in sync, not ready") => "not-ready",
                    Action::Keep if c.reason == "disabled" => "disabled",
                    Action::Keep => "healthy",
                    Action::Create => "missing",
                    _ => "drifted",
                };
                PartStatus {
                    id: r.id().into(),
                    state: state.into(),
                    detail: c.reason,
                }
            }
            Err(e) => PartStatus {
                id: r.id().into(),
                state: "error".into(),
                detail: e.to_string(),
            },
        };
        parts.push(part);
    }
    if let Some(why) = skip_verify {
        parts.push(PartStatus {
            id: VERIFY_ID.into(),
            state: "skipped".into(),
            detail: format!("pachd was not asked ({why})"),
        });
        return Ok(StatusReport {
            stack: session.stack.name.clone(),
            healthy: all_healthy(&parts),
            parts,
        });
    }
    // Asking a pachd that is missing or not ready would only wait out the
    // timeout; say why it was not asked instead.
    let pachd_part = parts.iter().find(|p| p.id == step_id(Component::Pachd));
    if let Some(p) = pachd_part.filter(|p| p.state != "healthy") {
        let detail = format!("not checked: runtime.pachd is {} ({})", p.state, p.detail);
        parts.push(PartStatus {
            id: VERIFY_ID.into(),
            state: "error".into(),
            detail,
        });
        return Ok(StatusReport {
            stack: session.stack.name.clone(),
            healthy: false,
            parts,
        });
    }
    let pachd = Verify::check(&rt, STATUS_VERIFY_TIMEOUT, opts.deep, &NoProgress).await;
    parts.push(match pachd {
        Ok(v) => PartStatus {
            id: VERIFY_ID.into(),
            state: "healthy".into(),
            detail: v.summary(),
        },
        Err(e) => PartStatus {
            id: VERIFY_ID.into(),
            state: "error".into(),
            detail: e.to_string(),
        },
    });
    Ok(StatusReport {
        stack: session.stack.name.clone(),
        healthy: all_healthy(&parts),
        parts,
    })
}

/// Healthy when no part is unhealthy: a part that is off, or a check that
/// was skipped, does not count against it (and is never shown as healthy).
fn all_healthy(parts: &[PartStatus]) -> bool {
    parts
        .iter()
        .all(|p| matches!(p.state.as_str(), "healthy" | "disabled" | "skipped"))
}
