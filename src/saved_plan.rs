//! A plan written to a file (`howdah plan --out FILE`) and carried out
//! later exactly as reviewed (`howdah up --plan FILE`). The file holds
//! what the plan was made from (a digest of the stack file's meaning and
//! one of the state's records) and every change with the live values it
//! was planned against. `up --plan` refuses, changing nothing, when any of
//! them no longer gives the same plan. Like every plan, it holds no secret:
//! secret values are never part of a change.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::plan::{Plan, PlanItem};
use crate::spec::Stack;
use crate::state::ResourceRecord;

/// The saved plan's format version.
pub const FORMAT: u32 = 1;

/// A saved plan file is small; anything larger is not one.
const MAX_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedPlan {
    pub format: u32,
    /// The howdah version that wrote it.
    pub howdah: String,
    pub written_at: DateTime<Utc>,
    /// The stack file it was made from, as given.
    pub stack_file: String,
    /// SHA-256 of the stack as read (its meaning: comments and layout do
    /// not count).
    pub stack_digest: String,
    /// SHA-256 of the state's records when planned: another run in between
    /// makes the plan stale.
    pub state_digest: String,
    /// Planned with `--allow-downgrade`.
    #[serde(default)]
    pub allow_downgrade: bool,
    pub plan: Plan,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The digest of a stack's meaning.
pub fn stack_digest(stack: &Stack) -> String {
    hex(&Sha256::digest(
        serde_json::to_vec(stack).unwrap_or_default(),
    ))
}

/// The digest of a state's records (none yet: the digest of no records).
pub fn state_digest(resources: Option<&BTreeMap<String, ResourceRecord>>) -> String {
    let empty = BTreeMap::new();
    hex(&Sha256::digest(
        serde_json::to_vec(resources.unwrap_or(&empty)).unwrap_or_default(),
    ))
}

impl SavedPlan {
    pub fn read(path: &Path) -> Result<SavedPlan, String> {
        let shown = path.display();
        let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
        if !meta.is_file() || meta.len() > MAX_BYTES {
            return Err(format!(
                "{shown} is not a plan file (write one with `howdah plan --out {shown}`)"
            ));
        }
        let text = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
        let value: serde_json::Value = serde_json::from_slice(&text).map_err(|e| {
            format!("{shown} is not a plan file written by `howdah plan --out` ({e})")
        })?;
        match value["format"].as_u64() {
            Some(f) if f == u64::from(FORMAT) => {}
            Some(f) if f > u64::from(FORMAT) => {
                return Err(format!(
                    "{shown} has plan format {f}: it was written by a newer howdah; plan again with this one"
                ))
            }
            _ => {
                return Err(format!(
                    "{shown} is not a plan file written by `howdah plan --out`"
                ))
            }
        }
        serde_json::from_value(value)
            .map_err(|e| format!("{shown} is not a valid plan file ({e}); plan again"))
    }

    /// Writes the file whole or not at all (a temporary file renamed).
    pub fn write(&self, path: &Path) -> Result<(), String> {
        let shown = path.display();
        let text =
            serde_json::to_string_pretty(self).map_err(|e| format!("cannot write {shown}: {e}"))?;
        let tmp = path.with_extension("tmp-howdah");
        std::fs::write(&tmp, format!("{text}\n"))
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                format!("cannot write {shown}: {e}")
            })
    }

    /// Why this plan cannot be carried out for `stack` with the state's
    /// records as they are now; `None` when it still can.
    pub fn stale_inputs(
        &self,
        stack: &Stack,
        target: &str,
        resources: Option<&BTreeMap<String, ResourceRecord>>,
    ) -> Option<String> {
        if self.plan.command != "up" {
            return Some(format!(
                "it plans `{}`, and `up --plan` carries out only plans of `up`",
                self.plan.command
            ));
        }
        if self.plan.stack != stack.name || self.plan.target != target {
            return Some(format!(
                "it is the plan of stack `{}` on target `{}`, not of `{}` on `{target}`",
                self.plan.stack, self.plan.target, stack.name
            ));
        }
        if self.stack_digest != stack_digest(stack) {
            return Some(format!(
                "the stack file changed since the plan was written ({})",
                self.written_at.format("%Y-%m-%d %H:%M:%S UTC")
            ));
        }
        if self.state_digest != state_digest(resources) {
            return Some(
                "another run changed the stack's state since the plan was written".to_string(),
            );
        }
        None
    }
}

/// How `now` differs from the saved plan, one line per resource; empty
/// when it plans the same changes against the same live values (a
/// reason's wording, such as whether pods are ready yet, does not count).
pub fn differences(saved: &Plan, now: &Plan) -> Vec<String> {
    let mut lines = Vec::new();
    for item in &saved.items {
        match now.item(&item.id) {
            None => lines.push(format!("{}: planned, now not part of the run", item.id)),
            Some(current) if !same_change(item, current) => lines.push(format!(
                "{}: planned {} ({}), now {} ({})",
                item.id,
                item.action.as_str(),
                item.reason,
                current.action.as_str(),
                current.reason
            )),
            Some(_) => {}
        }
    }
    for item in &now.items {
        if saved.item(&item.id).is_none() {
            lines.push(format!(
                "{}: not in the plan, now {} ({})",
                item.id,
                item.action.as_str(),
                item.reason
            ));
        }
    }
    lines
}

fn same_change(a: &PlanItem, b: &PlanItem) -> bool {
    a.action == b.action && a.fields == b.fields && a.documents == b.documents
}

#[cfg(test)]
mod tests {
    use super::*;
    use howdah_provider::{Action, FieldChange};

    fn item(id: &str, action: Action, old: &str) -> PlanItem {
        PlanItem {
            id: id.into(),
            action,
            reason: "1 field differs".into(),
            fields: vec![FieldChange {
                path: "Deployment/pachd: spec.replicas".into(),
                old: Some(old.into()),
                new: Some("2".into()),
            }],
            documents: BTreeMap::new(),
            depends_on: vec![],
            expected_s: 5.0,
            data: false,
        }
    }

    #[test]
    fn a_plan_differs_when_a_live_value_or_an_action_moved() {
        let saved = Plan::new(
            "s",
            "up",
            "kubeconfig",
            vec![item("a", Action::Update, "1")],
        );
        let same = Plan::new(
            "s",
            "up",
            "kubeconfig",
            vec![item("a", Action::Update, "1")],
        );
        assert!(differences(&saved, &same).is_empty());
        // Someone scaled it by hand in between: same action, other value.
        let moved = Plan::new(
            "s",
            "up",
            "kubeconfig",
            vec![item("a", Action::Update, "3")],
        );
        assert_eq!(differences(&saved, &moved).len(), 1);
        let gone = Plan::new(
            "s",
            "up",
            "kubeconfig",
            vec![item("a", Action::Create, "1")],
        );
        let d = differences(&saved, &gone);
        assert!(
            d[0].contains("planned update") && d[0].contains("now create"),
            "{d:?}"
        );
        let extra = Plan::new(
            "s",
            "up",
            "kubeconfig",
            vec![
                item("a", Action::Update, "1"),
                item("b", Action::Create, ""),
            ],
        );
        assert!(differences(&saved, &extra)[0].starts_with("b: not in the plan"));
    }

    #[test]
    fn a_reason_worded_otherwise_is_the_same_plan() {
        let saved = Plan::new("s", "up", "kubeconfig", vec![item("a", Action::Keep, "1")]);
        let mut later = item("a", Action::Keep, "1");
        later.reason = "in sync".into();
        let now = Plan::new("s", "up", "kubeconfig", vec![later]);
        assert!(differences(&saved, &now).is_empty());
    }

    #[test]
    fn the_state_digest_changes_with_any_record() {
        let none = state_digest(None);
        assert_eq!(none, state_digest(Some(&BTreeMap::new())));
        let mut records = BTreeMap::new();
        records.insert(
            "runtime.pachd".to_string(),
            ResourceRecord {
                action: "create".into(),
                status: "applied".into(),
                outputs: serde_json::Value::Null,
                at: Utc::now(),
                elapsed_s: 1.0,
                error: None,
            },
        );
        assert_ne!(none, state_digest(Some(&records)));
    }

    #[test]
    fn a_file_of_another_kind_or_a_newer_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.json");
        std::fs::write(&path, "{\"format\": 9}").unwrap();
        assert!(SavedPlan::read(&path).unwrap_err().contains("newer howdah"));
        std::fs::write(&path, "name: x").unwrap();
        assert!(SavedPlan::read(&path)
            .unwrap_err()
            .contains("not a plan file"));
        assert!(SavedPlan::read(dir.path())
            .unwrap_err()
            .contains("not a plan file"));
    }
}
