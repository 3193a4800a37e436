//! The plan: for every resource, what `up` or `down` will do and why, how
//! long each step is expected to take, and how long the whole run takes
//! when independent steps overlap (the critical path).

use std::collections::BTreeMap;
use std::time::Duration;

use howdah_provider::{Action, Change, FieldChange};
use serde::{Deserialize, Serialize};

/// One resource's line in the plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanItem {
    pub id: String,
    pub action: Action,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldChange>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub documents: BTreeMap<String, serde_json::Value>,
    pub depends_on: Vec<String>,
    pub expected_s: f64,
    /// Deleting it removes the stack's data (volumes, bucket contents).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub data: bool,
}

/// The whole plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub stack: String,
    /// up or down.
    pub command: String,
    pub target: String,
    pub items: Vec<PlanItem>,
    /// Expected wall time with steps overlapping as the graph allows.
    pub critical_path_s: f64,
    /// The ids on that path, first to last.
    pub critical_path: Vec<String>,
    /// Expected time if every step ran one after the other.
    pub sequential_s: f64,
}

impl Plan {
    pub fn new(stack: &str, command: &str, target: &str, items: Vec<PlanItem>) -> Plan {
        let (critical_path_s, critical_path) = critical_path(&items);
        let sequential_s = items.iter().map(|i| i.expected_s).sum();
        Plan {
            stack: stack.into(),
            command: command.into(),
            target: target.into(),
            items,
            critical_path_s,
            critical_path,
            sequential_s,
        }
    }

    pub fn has_changes(&self) -> bool {
        self.items.iter().any(|i| i.action.is_change())
    }

    pub fn count(&self, action: Action) -> usize {
        self.items.iter().filter(|i| i.action == action).count()
    }

    pub fn item(&self, id: &str) -> Option<&PlanItem> {
        self.items.iter().find(|i| i.id == id)
    }

    /// Expected time left on the critical path while the plan runs: a
    /// finished step counts nothing, a running one what is left of its
    /// usual duration (`running`: seconds since it started), the rest their
    /// whole usual duration.
    pub fn remaining_s(
        &self,
        finished: &std::collections::HashSet<String>,
        running: &std::collections::HashMap<String, f64>,
    ) -> f64 {
        let left: Vec<PlanItem> = self
            .items
            .iter()
            .map(|i| {
                let expected_s = if finished.contains(&i.id) {
                    0.0
                } else if let Some(elapsed) = running.get(&i.id) {
                    (i.expected_s - elapsed).max(0.0)
                } else {
                    i.expected_s
                };
                PlanItem {
                    expected_s,
                    ..i.clone()
                }
            })
            .collect();
        critical_path(&left).0
    }
}

/// A plan line from a resource's planned change.
pub fn item(
    id: &str,
    change: Change,
    depends_on: Vec<String>,
    expected: Duration,
    data: bool,
) -> PlanItem {
    PlanItem {
        id: id.into(),
        action: change.action,
        reason: change.reason,
        fields: change.fields,
        documents: change.documents,
        depends_on,
        expected_s: expected.as_secs_f64(),
        data,
    }
}

/// Longest expected-duration path through the graph (dependencies outside
/// the plan count as done).
fn critical_path(items: &[PlanItem]) -> (f64, Vec<String>) {
    let by_id: BTreeMap<&str, &PlanItem> = items.iter().map(|i| (i.id.as_str(), i)).collect();
    let mut memo: BTreeMap<&str, (f64, Option<&str>)> = BTreeMap::new();
    fn finish<'a>(
        id: &'a str,
        by_id: &BTreeMap<&'a str, &'a PlanItem>,
        memo: &mut BTreeMap<&'a str, (f64, Option<&'a str>)>,
        depth: usize,
    ) -> f64 {
        if let Some((t, _)) = memo.get(id) {
            return *t;
        }
        let Some(item) = by_id.get(id) else {
            return 0.0;
        };
        // The engine rejects cycles before running; here a cycle just stops the walk.
        if depth > by_id.len() {
            return 0.0;
        }
        let mut best = (0.0, None);
        for dep in &item.depends_on {
            if let Some((key, _)) = by_id.get_key_value(dep.as_str()) {
                let t = finish(key, by_id, memo, depth + 1);
                if t > best.0 {
                    best = (t, Some(*key));
                }
            }
        }
        let total = best.0 + item.expected_s;
        memo.insert(id, (total, best.1));
        total
    }
    let mut end: Option<&str> = None;
    let mut longest = 0.0;
    for id in by_id.keys() {
        let t = finish(id, &by_id, &mut memo, 0);
        if t > longest || end.is_none() {
            longest = t;
            end = Some(id);
        }
    }
    let mut path = Vec::new();
    let mut cursor = end;
    while let Some(id) = cursor {
        path.push(id.to_string());
        cursor = memo.get(id).and_then(|(_, prev)| *prev);
    }
    path.reverse();
    (longest, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn it(id: &str, deps: &[&str], secs: f64) -> PlanItem {
        PlanItem {
            id: id.into(),
            action: Action::Create,
            reason: String::new(),
            fields: vec![],
            documents: BTreeMap::new(),
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
            expected_s: secs,
            data: false,
        }
    }

    #[test]
    fn time_left_counts_what_is_not_done_along_the_slowest_chain() {
        let item = it;
        let plan = Plan::new(
            "s",
            "up",
            "aws",
            vec![
                item("network", &[], 60.0),
                item("cluster", &["network"], 600.0),
                item("bucket", &[], 5.0),
                item("runtime", &["cluster", "bucket"], 120.0),
            ],
        );
        let none = std::collections::HashSet::new();
        let idle = std::collections::HashMap::new();
        assert_eq!(plan.remaining_s(&none, &idle), 780.0);
        let finished: std::collections::HashSet<String> =
            ["network".to_string(), "bucket".to_string()].into();
        let running = std::collections::HashMap::from([("cluster".to_string(), 450.0)]);
        assert_eq!(plan.remaining_s(&finished, &running), 270.0);
        // A step slower than usual leaves nothing of its own, not less.
        let late = std::collections::HashMap::from([("cluster".to_string(), 900.0)]);
        assert_eq!(plan.remaining_s(&finished, &late), 120.0);
    }

    #[test]
    fn critical_path_follows_the_slowest_chain() {
        let plan = Plan::new(
            "s",
            "up",
            "aws",
            vec![
                it("cluster", &[], 780.0),
                it("bucket", &[], 5.0),
                it("nodes", &["cluster"], 240.0),
                it("runtime", &["nodes", "bucket"], 90.0),
            ],
        );
        assert_eq!(plan.critical_path_s, 1110.0);
        assert_eq!(plan.critical_path, vec!["cluster", "nodes", "runtime"]);
        assert_eq!(plan.sequential_s, 1115.0);
    }

    #[test]
    fn keeps_are_not_changes() {
        let mut keep = it("a", &[], 0.0);
        keep.action = Action::Keep;
        let plan = Plan::new("s", "up", "kubeconfig", vec![keep]);
        assert!(!plan.has_changes());
    }
}
