//! Maps a path in the document (`pachyderm.etcd.size`) to the line and column
//! where its key or value is written.
//!
//! serde_norway exposes no spans, but it does put the position of the
//! current YAML event on every error a visitor returns. So to find a node we
//! deserialize the document with a seed that walks down the path and fails,
//! with a private marker, exactly when it reaches the node: the error's
//! location is the node's. One parse per lookup; lookups only happen for
//! problems, and a stack file parses in well under a millisecond.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// One step of a path: a mapping key or a list index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    Key(String),
    Index(usize),
}

/// A path from the document root, e.g. `pachyderm.tolerations[0].effect`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct YamlPath(Vec<Segment>);

impl YamlPath {
    pub(crate) fn root() -> Self {
        YamlPath(Vec::new())
    }

    /// A path of plain keys.
    pub(crate) fn of(keys: &[&str]) -> Self {
        YamlPath(
            keys.iter()
                .map(|k| Segment::Key((*k).to_string()))
                .collect(),
        )
    }

    pub(crate) fn key(&self, key: &str) -> Self {
        let mut path = self.clone();
        path.0.push(Segment::Key(key.to_string()));
        path
    }

    pub(crate) fn index(&self, index: usize) -> Self {
        let mut path = self.clone();
        path.0.push(Segment::Index(index));
        path
    }

    pub(crate) fn segments(&self) -> &[Segment] {
        &self.0
    }

    pub(crate) fn parent(&self) -> Option<Self> {
        let mut path = self.clone();
        path.0.pop().map(|_| path)
    }

    /// Parses serde_norway's rendering of a path (`a.b[2].c`, `.` for the
    /// root). Keys containing `.` or `[` cannot be told apart from nesting;
    /// serde paths only ever name struct fields there, which never do.
    pub(crate) fn parse_serde(text: &str) -> Self {
        let mut segments = Vec::new();
        if text == "." || text.is_empty() {
            return YamlPath(segments);
        }
        for part in text.split('.') {
            let (key, mut indexes) = match part.find('[') {
                Some(at) => (&part[..at], &part[at..]),
                None => (part, ""),
            };
            if !key.is_empty() {
                segments.push(Segment::Key(key.to_string()));
            }
            while let Some(close) = indexes.find(']') {
                if let Ok(index) = indexes[1..close].parse() {
                    segments.push(Segment::Index(index));
                }
                indexes = &indexes[close + 1..];
            }
        }
        YamlPath(segments)
    }
}

impl fmt::Display for YamlPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Index(index) => write!(f, "[{index}]")?,
                Segment::Key(key) if is_plain_key(key) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(key)?;
                }
                Segment::Key(key) => write!(f, "[{key:?}]")?,
            }
        }
        Ok(())
    }
}

/// Keys printable without quoting in a dotted path.
fn is_plain_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Which part of a mapping entry a problem points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Key,
    Value,
}

/// A 1-based line and character column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Position {
    pub(crate) line: usize,
    pub(crate) column: usize,
}

impl Position {
    pub(crate) const START: Position = Position { line: 1, column: 1 };
}

const FOUND: &str = "\u{0}howdah-located\u{0}";

/// Where the key or value at `path` is written. For `Part::Key`, `nth`
/// selects among repeated keys (0 is the first), which is how a duplicate
/// key is pointed at. `None` when the path is not in the document.
pub(crate) fn locate(source: &str, path: &YamlPath, part: Part, nth: usize) -> Option<Position> {
    // The root has no key; its "key" is where its value starts.
    let part = if path.0.is_empty() { Part::Value } else { part };
    let seen = Cell::new(0);
    let seek = Seek {
        path: &path.0,
        part,
        nth,
        seen: &seen,
    };
    let error = seek
        .deserialize(serde_norway::Deserializer::from_str(source))
        .err()?;
    if !error.to_string().contains(FOUND) {
        return None;
    }
    error.location().map(|l| Position {
        line: l.line(),
        column: l.column(),
    })
}

/// Like [`locate`], but falls back to the nearest ancestor that is written
/// (pointing at its key), and to the start of the document: a problem
/// about a defaulted value is reported where the user would add it.
pub(crate) fn locate_nearest(source: &str, path: &YamlPath, part: Part) -> Position {
    if let Some(position) = locate(source, path, part, 0) {
        return position;
    }
    let mut current = path.parent();
    while let Some(ancestor) = current {
        if let Some(position) = locate(source, &ancestor, Part::Key, 0) {
            return position;
        }
        current = ancestor.parent();
    }
    Position::START
}

/// Walks down `path`; fails with [`FOUND`] on reaching the target.
struct Seek<'p> {
    path: &'p [Segment],
    part: Part,
    nth: usize,
    seen: &'p Cell<usize>,
}

fn found<E: de::Error>() -> E {
    E::custom(FOUND)
}

impl<'de> DeserializeSeed<'de> for Seek<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seek<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.scalar()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_i128<E: de::Error>(self, _: i128) -> Result<(), E> {
        self.scalar()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_u128<E: de::Error>(self, _: u128) -> Result<(), E> {
        self.scalar()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.scalar()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.scalar()
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.scalar()
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((Segment::Key(wanted), rest)) = self.path.split_first() else {
            return if self.path.is_empty() {
                Err(found())
            } else {
                Ok(())
            };
        };
        let stop_at_key = rest.is_empty() && self.part == Part::Key;
        while let Some(matched) = map.next_key_seed(KeyProbe {
            wanted,
            stop: stop_at_key,
            nth: self.nth,
            seen: self.seen,
        })? {
            if matched {
                return map.next_value_seed(Seek { path: rest, ..self });
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((Segment::Index(wanted), rest)) = self.path.split_first() else {
            return if self.path.is_empty() {
                Err(found())
            } else {
                Ok(())
            };
        };
        for _ in 0..*wanted {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
        }
        seq.next_element_seed(Seek { path: rest, ..self })
            .map(|_| ())
    }
}

impl Seek<'_> {
    fn scalar<E: de::Error>(self) -> Result<(), E> {
        if self.path.is_empty() {
            Err(found())
        } else {
            Ok(())
        }
    }
}

/// Reads one mapping key; `true` when it is the wanted one (and, when the
/// key itself is the target, fails there instead).
struct KeyProbe<'p> {
    wanted: &'p str,
    stop: bool,
    nth: usize,
    seen: &'p Cell<usize>,
}

impl KeyProbe<'_> {
    fn check<E: de::Error>(self, key: &str) -> Result<bool, E> {
        if key != self.wanted {
            return Ok(false);
        }
        if !self.stop {
            return Ok(true);
        }
        // Only occurrences of the target key itself count towards `nth`.
        let seen = self.seen.get();
        self.seen.set(seen + 1);
        if seen == self.nth {
            Err(found())
        } else {
            Ok(false)
        }
    }
}

impl<'de> DeserializeSeed<'de> for KeyProbe<'_> {
    type Value = bool;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeyProbe<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        self.check(v)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        self.check(&v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
        self.check(&v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
        self.check(&v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<bool, E> {
        self.check(&v.to_string())
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
name: demo
pachyderm:
  etcd:
    size: 10GB
  tolerations:
    - key: a
      effect: Bad
    - {key: b, operator: Exists}
tags:
  a.b/c: \"x\"
  a.b/c: y
";

    fn at(path: &YamlPath, part: Part) -> Option<(usize, usize)> {
        locate(DOC, path, part, 0).map(|p| (p.line, p.column))
    }

    #[test]
    fn finds_keys_and_values() {
        let size = YamlPath::of(&["pachyderm", "etcd", "size"]);
        assert_eq!(at(&size, Part::Key), Some((4, 5)));
        assert_eq!(at(&size, Part::Value), Some((4, 11)));
        let effect = YamlPath::of(&["pachyderm", "tolerations"])
            .index(0)
            .key("effect");
        assert_eq!(at(&effect, Part::Value), Some((7, 15)));
        let operator = YamlPath::of(&["pachyderm", "tolerations"])
            .index(1)
            .key("operator");
        assert_eq!(at(&operator, Part::Value), Some((8, 26)));
        assert_eq!(at(&YamlPath::root(), Part::Value), Some((1, 1)));
    }

    #[test]
    fn finds_repeated_keys_and_reports_missing_ones() {
        let tag = YamlPath::of(&["tags", "a.b/c"]);
        assert_eq!(
            locate(DOC, &tag, Part::Key, 1).map(|p| (p.line, p.column)),
            Some((11, 3))
        );
        assert_eq!(at(&YamlPath::of(&["pachyderm", "pachd"]), Part::Key), None);
        let missing = YamlPath::of(&["pachyderm", "etcd", "replicas"]);
        assert_eq!(
            locate_nearest(DOC, &missing, Part::Value),
            Position { line: 3, column: 3 }
        );
    }

    #[test]
    fn paths_print_and_parse() {
        let path = YamlPath::of(&["pachyderm", "tolerations"])
            .index(2)
            .key("effect");
        assert_eq!(path.to_string(), "pachyderm.tolerations[2].effect");
        assert_eq!(YamlPath::parse_serde(&path.to_string()), path);
        assert_eq!(YamlPath::parse_serde("."), YamlPath::root());
        assert_eq!(
            YamlPath::of(&["tags", "app.kubernetes.io/name"]).to_string(),
            "tags[\"app.kubernetes.io/name\"]"
        );
    }
}
