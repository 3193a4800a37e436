//! The object store: every object as JSON keyed by type/namespace/name, one
//! global resourceVersion counter, and a bounded history of watch events
//! (so watches can resume from a recent resourceVersion, and answer 410 Gone
//! for older ones). Every change is broadcast to live watches while the lock
//! is held, so watchers see events in resourceVersion order without gaps.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::Rng;
use serde_json::{json, Value};
use tokio::sync::{broadcast, Notify};

use crate::resources::ResourceType;

/// Events kept for watch resumption. Older resourceVersions get 410 Gone.
const HISTORY: usize = 20_000;
const BROADCAST: usize = 16_384;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    pub group: &'static str,
    pub plural: &'static str,
    pub ns: String,
    pub name: String,
}

impl Key {
    pub fn new(rt: &ResourceType, ns: Option<&str>, name: &str) -> Key {
        Key {
            group: rt.group,
            plural: rt.plural,
            ns: if rt.namespaced {
                ns.unwrap_or_default().to_string()
            } else {
                String::new()
            },
            name: name.to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

#[derive(Debug)]
pub struct WatchEvent {
    pub rv: u64,
    pub etype: EventType,
    pub rt: &'static ResourceType,
    pub ns: String,
    pub object: Value,
    /// The object before a modification (watch selectors need both sides).
    pub old: Option<Value>,
}

pub struct State {
    objects: BTreeMap<Key, Value>,
    pub rv: u64,
    history: VecDeque<Arc<WatchEvent>>,
    /// resourceVersions at or below this are no longer in the history.
    pub compacted: u64,
    /// The resourceVersion when seeding ended: the cluster's "boot". Types
    /// whose history the real server no longer had from that far back
    /// (events: not watch-cached and etcd compacted; nodes: heartbeats roll
    /// the watch cache) answer older watches with 410 (kube-recordings
    /// 20-probes seq 90, 91).
    pub seed_rv: u64,
    tx: broadcast::Sender<Arc<WatchEvent>>,
    /// Allocation counters for cluster IPs, node ports and pod IPs.
    pub counters: HashMap<&'static str, u32>,
}

pub struct Store {
    state: Mutex<State>,
    /// Wakes the simulated controllers after every change.
    pub changed: Notify,
    pub ready_delay: Duration,
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub fn new_uid() -> String {
    let b: [u8; 16] = rand::rng().random();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// Five random characters from the alphabet Kubernetes uses for
/// generateName suffixes (no vowels, no confusable digits).
pub fn random_suffix(n: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut r = rand::rng();
    (0..n)
        .map(|_| ALPHABET[r.random_range(0..ALPHABET.len())] as char)
        .collect()
}

pub fn name_of(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
}

pub fn ns_of(obj: &Value) -> &str {
    obj.pointer("/metadata/namespace")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
}

pub fn uid_of(obj: &Value) -> &str {
    obj.pointer("/metadata/uid")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
}

pub fn is_terminating(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The object with the managedFields timestamps blanked, for "did anything
/// change" comparisons (a no-op write must not bump the resourceVersion).
pub fn comparable(obj: &Value) -> Value {
    let mut c = obj.clone();
    if let Some(meta) = c.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        meta.remove("resourceVersion");
        if let Some(Value::Array(mf)) = meta.get_mut("managedFields") {
            for e in mf {
                if let Some(o) = e.as_object_mut() {
                    o.remove("time");
                }
            }
        }
    }
    c
}

/// Everything but metadata and status: what a generation bump tracks.
fn spec_part(obj: &Value) -> Value {
    let mut c = obj.clone();
    if let Some(m) = c.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    c
}

/// The generation an update gets: bumped when anything outside metadata
/// and status changes, or when deletion starts.
pub fn set_generation(rt: &ResourceType, old: &Value, new: &mut Value) {
    if !rt.has_generation {
        return;
    }
    let g = old
        .pointer("/metadata/generation")
        .and_then(|v| v.as_i64())
        .unwrap_or(1);
    let bump = spec_part(old) != spec_part(new) || (is_terminating(new) && !is_terminating(old));
    new["metadata"]["generation"] = json!(if bump { g + 1 } else { g });
}

impl Store {
    pub fn new(ready_delay: Duration) -> Arc<Store> {
        let (tx, _) = broadcast::channel(BROADCAST);
        Arc::new(Store {
            state: Mutex::new(State {
                objects: BTreeMap::new(),
                rv: 0,
                history: VecDeque::new(),
                compacted: 0,
                seed_rv: 0,
                tx,
                counters: HashMap::new(),
            }),
            changed: Notify::new(),
            ready_delay,
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would be a fake bug; keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<WatchEvent>> {
        self.tx.subscribe()
    }

    pub fn get(&self, rt: &ResourceType, ns: Option<&str>, name: &str) -> Option<&Value> {
        self.objects.get(&Key::new(rt, ns, name))
    }

    /// Objects of one type, optionally within one namespace, in key order.
    pub fn list(&self, rt: &ResourceType, ns: Option<&str>) -> Vec<&Value> {
        let start = Key {
            group: rt.group,
            plural: rt.plural,
            ns: ns.filter(|_| rt.namespaced).unwrap_or_default().to_string(),
            name: String::new(),
        };
        self.objects
            .range(start..)
            .take_while(|(k, _)| {
                k.group == rt.group
                    && k.plural == rt.plural
                    && (ns.is_none() || !rt.namespaced || Some(k.ns.as_str()) == ns)
            })
            .map(|(_, v)| v)
            .collect()
    }

    /// Every stored object with its type (for garbage collection).
    pub fn all(&self) -> impl Iterator<Item = (&Key, &Value)> {
        self.objects.iter()
    }

    pub fn contains(&self, rt: &ResourceType, ns: Option<&str>, name: &str) -> bool {
        self.objects.contains_key(&Key::new(rt, ns, name))
    }

    /// Events newer than `rv`, or None if the history no longer reaches back.
    pub fn history_since(&self, rv: u64) -> Option<Vec<Arc<WatchEvent>>> {
        if rv < self.compacted {
            return None;
        }
        Some(self.history.iter().filter(|e| e.rv > rv).cloned().collect())
    }

    fn emit(
        &mut self,
        etype: EventType,
        rt: &'static ResourceType,
        object: Value,
        old: Option<Value>,
    ) {
        let ev = Arc::new(WatchEvent {
            rv: self.rv,
            etype,
            rt,
            ns: ns_of(&object).to_string(),
            object,
            old,
        });
        if self.history.len() >= HISTORY {
            if let Some(e) = self.history.pop_front() {
                self.compacted = e.rv;
            }
        }
        self.history.push_back(ev.clone());
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(ev);
    }

    /// Stores a new object, filling in the metadata the server owns.
    pub fn insert_new(&mut self, rt: &'static ResourceType, mut obj: Value) -> Value {
        self.rv += 1;
        let meta = obj["metadata"].as_object_mut().expect("metadata");
        if !meta.contains_key("uid") {
            meta.insert("uid".into(), json!(new_uid()));
        }
        meta.insert("resourceVersion".into(), json!(self.rv.to_string()));
        if !meta.contains_key("creationTimestamp") {
            meta.insert("creationTimestamp".into(), json!(now()));
        }
        if rt.has_generation {
            meta.insert("generation".into(), json!(1));
        }
        let key = Key::new(rt, Some(ns_of(&obj)), name_of(&obj));
        self.objects.insert(key, obj.clone());
        self.emit(EventType::Added, rt, obj.clone(), None);
        obj
    }

    /// Replaces a stored object. No-op writes are skipped (same resourceVersion
    /// returned). The generation moves when anything outside metadata/status
    /// changes. An object whose last finalizer went while it is being deleted
    /// (and no grace period is pending) is removed, as the real registry does.
    pub fn replace(&mut self, rt: &'static ResourceType, mut new: Value) -> Value {
        let key = Key::new(rt, Some(ns_of(&new)), name_of(&new));
        let Some(old) = self.objects.get(&key).cloned() else {
            return self.insert_new(rt, new);
        };
        if comparable(&old) == comparable(&new) {
            return old;
        }
        let graceful = new
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(|v| v.as_i64())
            .is_some_and(|g| g > 0);
        if is_terminating(&new)
            && finalizers(&new).is_empty()
            && !graceful
            && rt.plural != "namespaces"
        {
            return self.remove(rt, Some(&key.ns), &key.name).unwrap_or(new);
        }
        self.rv += 1;
        set_generation(rt, &old, &mut new);
        new["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.objects.insert(key, new.clone());
        self.emit(EventType::Modified, rt, new.clone(), Some(old));
        new
    }

    /// Removes an object for good (the DELETED event carries a fresh
    /// resourceVersion, like etcd's delete revision).
    pub fn remove(
        &mut self,
        rt: &'static ResourceType,
        ns: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let mut obj = self.objects.remove(&Key::new(rt, ns, name))?;
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.emit(EventType::Deleted, rt, obj.clone(), None);
        Some(obj)
    }

    pub fn next_counter(&mut self, name: &'static str) -> u32 {
        let c = self.counters.entry(name).or_insert(0);
        *c += 1;
        *c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::rt;

    #[test]
    fn history_is_bounded_and_reports_compaction() {
        let store = Store::new(Duration::ZERO);
        let mut st = store.lock();
        let cm = rt("", "configmaps");
        for i in 0..HISTORY + 10 {
            let obj = json!({"metadata": {"name": format!("c{i}"), "namespace": "default"}});
            st.insert_new(cm, obj);
        }
        assert_eq!(st.rv, (HISTORY + 10) as u64);
        assert!(st.history_since(1).is_none(), "rv 1 was compacted away");
        let recent = st.history_since(st.rv - 3).expect("recent history");
        assert_eq!(recent.len(), 3);
        assert_eq!(recent[0].rv, st.rv - 2);
    }
}
