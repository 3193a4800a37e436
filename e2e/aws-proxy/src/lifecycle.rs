//! The proxy's view of EKS clusters and nodegroups over time. moto makes
//! every resource ACTIVE at once and forgets it at once on delete; real EKS
//! takes minutes each way. The proxy remembers when it saw each resource
//! created or deleted and derives the status a real API would show now.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long each EKS transition lasts (wall time).
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    pub cluster_create: Duration,
    pub cluster_delete: Duration,
    pub nodegroup_create: Duration,
    pub nodegroup_delete: Duration,
    pub addon_create: Duration,
    pub addon_delete: Duration,
    /// Clusters end their create FAILED instead of ACTIVE.
    pub clusters_fail: bool,
}

/// Where a resource is in its life, as the API would report it.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    Creating,
    Active,
    /// Deleted upstream but still visible; the value is the resource's last JSON.
    Deleting(Value),
    Gone,
}

impl Phase {
    pub fn status(&self) -> Option<&'static str> {
        match self {
            Phase::Creating => Some("CREATING"),
            Phase::Active => Some("ACTIVE"),
            Phase::Deleting(_) => Some("DELETING"),
            Phase::Gone => None,
        }
    }
}

/// A resource the proxy saw created (and maybe deleted).
#[derive(Debug, Clone)]
struct Tracked {
    created: Instant,
    /// When the delete was accepted, and the resource as it last looked.
    deleted: Option<(Instant, Value)>,
    /// Whether a Describe has already answered ACTIVE since the create.
    active_described: bool,
}

/// How long after a resource reached its end state a Describe first said
/// so: the waiting side's detection lag for one wait.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// `cluster create`, `nodegroup delete`, ...
    pub what: String,
    pub name: String,
    pub lag: Duration,
}

impl Tracked {
    fn phase(&self, now: Instant, create: Duration, delete: Duration) -> Phase {
        match &self.deleted {
            Some((since, last)) if now.duration_since(*since) < delete => {
                Phase::Deleting(last.clone())
            }
            Some(_) => Phase::Gone,
            None if now.duration_since(self.created) < create => Phase::Creating,
            None => Phase::Active,
        }
    }
}

/// (region, cluster)
pub type ClusterKey = (String, String);
/// (region, cluster, nodegroup)
pub type NodegroupKey = (String, String, String);

/// Clusters and nodegroups the proxy has seen created through it.
#[derive(Debug, Default)]
pub struct Lifecycle {
    clusters: HashMap<ClusterKey, Tracked>,
    nodegroups: HashMap<NodegroupKey, Tracked>,
    detections: Vec<Detection>,
}

/// Records the lag of a Describe that shows `tracked` in its end state for
/// the first time: ACTIVE after the create, gone after the delete.
fn observe(
    detections: &mut Vec<Detection>,
    kind: &str,
    name: &str,
    tracked: &mut Tracked,
    phase: &Phase,
    create: Duration,
    delete: Duration,
) {
    let now = Instant::now();
    let (what, done_at) = match (phase, &tracked.deleted) {
        (Phase::Active, None) if !tracked.active_described => {
            tracked.active_described = true;
            ("create", tracked.created + create)
        }
        (Phase::Gone, Some((since, _))) => ("delete", *since + delete),
        _ => return,
    };
    detections.push(Detection {
        what: format!("{kind} {what}"),
        name: name.to_string(),
        lag: now.saturating_duration_since(done_at),
    });
}

impl Lifecycle {
    /// The phase of a cluster; `Active` for one the proxy never saw created.
    pub fn cluster(&mut self, key: &ClusterKey, t: &Timings) -> Phase {
        let now = Instant::now();
        let phase = self.clusters.get(key).map_or(Phase::Active, |c| {
            c.phase(now, t.cluster_create, t.cluster_delete)
        });
        if phase == Phase::Gone {
            self.clusters.remove(key);
        }
        phase
    }

    /// The phase of a nodegroup; `Active` for one the proxy never saw created.
    pub fn nodegroup(&mut self, key: &NodegroupKey, t: &Timings) -> Phase {
        let now = Instant::now();
        let phase = self.nodegroups.get(key).map_or(Phase::Active, |n| {
            n.phase(now, t.nodegroup_create, t.nodegroup_delete)
        });
        if phase == Phase::Gone {
            self.nodegroups.remove(key);
        }
        phase
    }

    /// The phase of a cluster as a DescribeCluster answers it, noting
    /// when that answer is the first to show the create or delete done.
    pub fn describe_cluster(&mut self, key: &ClusterKey, t: &Timings) -> Phase {
        let now = Instant::now();
        let Some(tracked) = self.clusters.get_mut(key) else {
            return Phase::Active;
        };
        let phase = tracked.phase(now, t.cluster_create, t.cluster_delete);
        let (create, delete) = (t.cluster_create, t.cluster_delete);
        observe(
            &mut self.detections,
            "cluster",
            &key.1,
            tracked,
            &phase,
            create,
            delete,
        );
        if phase == Phase::Gone {
            self.clusters.remove(key);
        }
        phase
    }

    /// As [`Lifecycle::describe_cluster`], for DescribeNodegroup.
    pub fn describe_nodegroup(&mut self, key: &NodegroupKey, t: &Timings) -> Phase {
        let now = Instant::now();
        let Some(tracked) = self.nodegroups.get_mut(key) else {
            return Phase::Active;
        };
        let phase = tracked.phase(now, t.nodegroup_create, t.nodegroup_delete);
        let (create, delete) = (t.nodegroup_create, t.nodegroup_delete);
        observe(
            &mut self.detections,
            "nodegroup",
            &key.2,
            tracked,
            &phase,
            create,
            delete,
        );
        if phase == Phase::Gone {
            self.nodegroups.remove(key);
        }
        phase
    }

    /// Every detection lag noted so far, in the order they were noticed.
    pub fn detections(&self) -> Vec<Detection> {
        self.detections.clone()
    }

    /// Whether the proxy knows the cluster is DELETING.
    pub fn cluster_deleting(&mut self, key: &ClusterKey, t: &Timings) -> bool {
        matches!(self.cluster(key, t), Phase::Deleting(_))
    }

    pub fn cluster_created(&mut self, key: ClusterKey) {
        self.clusters.insert(
            key,
            Tracked {
                created: Instant::now(),
                deleted: None,
                active_described: false,
            },
        );
    }

    pub fn cluster_deleted(&mut self, key: ClusterKey, last: Value) {
        let (region, cluster) = &key;
        self.nodegroups
            .retain(|(r, c, _), _| !(r == region && c == cluster));
        let created = self
            .clusters
            .get(&key)
            .map_or(Instant::now(), |c| c.created);
        self.clusters.insert(
            key,
            Tracked {
                created,
                deleted: Some((Instant::now(), last)),
                active_described: true,
            },
        );
    }

    pub fn nodegroup_created(&mut self, key: NodegroupKey) {
        self.nodegroups.insert(
            key,
            Tracked {
                created: Instant::now(),
                deleted: None,
                active_described: false,
            },
        );
    }

    pub fn nodegroup_deleted(&mut self, key: NodegroupKey, last: Value) {
        let created = self
            .nodegroups
            .get(&key)
            .map_or(Instant::now(), |n| n.created);
        self.nodegroups.insert(
            key,
            Tracked {
                created,
                deleted: Some((Instant::now(), last)),
                active_described: true,
            },
        );
    }

    /// Names of the cluster's nodegroups the proxy has seen created and not
    /// yet seen disappear (CREATING, ACTIVE or DELETING), sorted.
    pub fn live_nodegroups(&mut self, region: &str, cluster: &str, t: &Timings) -> Vec<String> {
        let keys: Vec<NodegroupKey> = self
            .nodegroups
            .keys()
            .filter(|(r, c, _)| r == region && c == cluster)
            .cloned()
            .collect();
        let mut names: Vec<String> = keys
            .into_iter()
            .filter(|key| self.nodegroup(key, t) != Phase::Gone)
            .map(|(_, _, name)| name)
            .collect();
        names.sort();
        names
    }

    /// Names of the cluster's nodegroups that are DELETING, sorted.
    pub fn deleting_nodegroups(&mut self, region: &str, cluster: &str, t: &Timings) -> Vec<String> {
        let keys: Vec<NodegroupKey> = self
            .nodegroups
            .keys()
            .filter(|(r, c, _)| r == region && c == cluster)
            .cloned()
            .collect();
        let mut names: Vec<String> = keys
            .into_iter()
            .filter(|key| matches!(self.nodegroup(key, t), Phase::Deleting(_)))
            .map(|(_, _, name)| name)
            .collect();
        names.sort();
        names
    }

    /// Names of the clusters in `region` that are DELETING, sorted.
    pub fn deleting_clusters(&mut self, region: &str, t: &Timings) -> Vec<String> {
        let keys: Vec<ClusterKey> = self
            .clusters
            .keys()
            .filter(|(r, _)| r == region)
            .cloned()
            .collect();
        let mut names: Vec<String> = keys
            .into_iter()
            .filter(|key| self.cluster_deleting(key, t))
            .map(|(_, name)| name)
            .collect();
        names.sort();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn timings(ms: u64) -> Timings {
        let d = Duration::from_millis(ms);
        Timings {
            cluster_create: d,
            cluster_delete: d,
            nodegroup_create: d,
            nodegroup_delete: d,
            addon_create: d,
            addon_delete: d,
            clusters_fail: false,
        }
    }

    fn key(name: &str) -> ClusterKey {
        ("us-east-1".into(), name.into())
    }

    #[test]
    fn unknown_clusters_are_active() {
        let mut l = Lifecycle::default();
        assert_eq!(l.cluster(&key("c"), &timings(1000)), Phase::Active);
    }

    #[test]
    fn a_cluster_is_creating_then_active_then_deleting_then_gone() {
        let mut l = Lifecycle::default();
        let t = timings(40);
        l.cluster_created(key("c"));
        assert_eq!(l.cluster(&key("c"), &t), Phase::Creating);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(l.cluster(&key("c"), &t), Phase::Active);
        l.cluster_deleted(key("c"), json!({"name": "c"}));
        assert_eq!(
            l.cluster(&key("c"), &t),
            Phase::Deleting(json!({"name": "c"}))
        );
        assert_eq!(l.deleting_clusters("us-east-1", &t), vec!["c".to_string()]);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(l.cluster(&key("c"), &t), Phase::Gone);
        assert!(l.deleting_clusters("us-east-1", &t).is_empty());
    }

    #[test]
    fn a_describe_notes_how_late_it_first_saw_a_create_or_delete_done() {
        let mut l = Lifecycle::default();
        let t = timings(30);
        l.cluster_created(key("c"));
        assert_eq!(l.describe_cluster(&key("c"), &t), Phase::Creating);
        assert!(l.detections().is_empty());
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(l.describe_cluster(&key("c"), &t), Phase::Active);
        assert_eq!(l.describe_cluster(&key("c"), &t), Phase::Active);
        let seen = l.detections();
        assert_eq!(seen.len(), 1, "only the first ACTIVE counts: {seen:?}");
        assert_eq!(seen[0].what, "cluster create");
        assert!(seen[0].lag >= Duration::from_millis(25), "{seen:?}");
        l.cluster_deleted(key("c"), json!({}));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(l.describe_cluster(&key("c"), &t), Phase::Gone);
        let seen = l.detections();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[1].what, "cluster delete");
        assert!(seen[1].lag < Duration::from_millis(40), "{seen:?}");
    }

    #[test]
    fn deleting_nodegroups_stay_live_until_their_delete_ends() {
        let mut l = Lifecycle::default();
        let t = timings(40);
        let ng = ("us-east-1".to_string(), "c".to_string(), "ng".to_string());
        l.nodegroup_created(ng.clone());
        l.nodegroup_deleted(ng.clone(), json!({}));
        assert_eq!(
            l.live_nodegroups("us-east-1", "c", &t),
            vec!["ng".to_string()]
        );
        assert_eq!(
            l.deleting_nodegroups("us-east-1", "c", &t),
            vec!["ng".to_string()]
        );
        assert!(l.live_nodegroups("eu-west-1", "c", &t).is_empty());
        std::thread::sleep(Duration::from_millis(50));
        assert!(l.live_nodegroups("us-east-1", "c", &t).is_empty());
    }
}
