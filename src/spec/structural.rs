//! Problems with the shape of the file: YAML syntax, tabs, duplicate keys,
//! an empty or non-mapping document, and what serde reports (unknown keys,
//! wrong types, bad enum values, missing keys), rewritten into messages that
//! say where, what was expected, and what to write instead.
//!
//! serde stops at its first error, so at most one problem comes from here;
//! the semantic checks in `validate` only run once the shape is right.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::errors::{token_span, SpecProblem};
use super::location::{locate, locate_nearest, Part, Position, YamlPath};
use super::schema;

/// The closest of `candidates` to a mistyped `word`, if one is close enough
/// to be worth suggesting. Case, `_` and `-` are ignored first, so
/// `storage_class` finds `storageClass`.
pub(crate) fn did_you_mean<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let fold = |s: &str| -> String {
        s.chars()
            .filter(|c| *c != '_' && *c != '-')
            .flat_map(char::to_lowercase)
            .collect()
    };
    let folded = fold(word);
    if let Some(exact) = candidates.iter().find(|c| fold(c) == folded) {
        return Some(exact);
    }
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(&folded, &fold(c)), *c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// The document's top-level node, as far as the checks here care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Mapping,
    List,
    Scalar,
    Empty,
}

const DUPLICATE: &str = "\u{0}howdah-duplicate\u{0}";

/// Checks what serde cannot be asked to: YAML syntax (serde_norway's typed
/// path may report a type error before a later syntax error), duplicate keys
/// in every mapping (serde silently keeps the last one in a map), and the
/// kind of the top-level node.
pub(crate) fn check_document(source: &str) -> Option<SpecProblem> {
    let shape = ShapeSeed { path: "" }.deserialize(serde_norway::Deserializer::from_str(source));
    match shape {
        Ok(Shape::Mapping) => None,
        Ok(Shape::Empty) => Some(SpecProblem {
            line: 1,
            column: 1,
            path: String::new(),
            message: "the file is empty: expected a mapping with at least `name` and `target`"
                .into(),
            help: Some("`howdah init` writes a commented starter file".into()),
        }),
        Ok(shape) => {
            let found = if shape == Shape::List {
                "a list"
            } else {
                "a single value"
            };
            let at = locate(source, &YamlPath::root(), Part::Value, 0).unwrap_or(Position::START);
            Some(SpecProblem {
                line: at.line,
                column: at.column,
                path: String::new(),
                message: format!(
                    "the top level must be a mapping of keys (`name:`, `target:`, …), found {found}"
                ),
                help: None,
            })
        }
        Err(error) => Some(from_serde(source, &error)),
    }
}

struct ShapeSeed<'a> {
    path: &'a str,
}

impl<'de> DeserializeSeed<'de> for ShapeSeed<'_> {
    type Value = Shape;
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Shape, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ShapeSeed<'_> {
    type Value = Shape;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML node")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Shape, E> {
        Ok(Shape::Scalar)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Shape, E> {
        Ok(Shape::Scalar)
    }
    fn visit_i128<E: de::Error>(self, _: i128) -> Result<Shape, E> {
        Ok(Shape::Scalar)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Shape, E> {
        Ok(Shape::Scalar)
    }
    fn visit_u128<E: de::Error>(self, _: u128) -> Result<Shape, E> {
        Ok(Shape::Scalar)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Shape, E> {
        Ok(Shape::Scalar)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Shape, E> {
        Ok(Shape::Scalar)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Shape, E> {
        Ok(Shape::Empty)
    }
    fn visit_none<E: de::Error>(self) -> Result<Shape, E> {
        Ok(Shape::Empty)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
        let seen = RefCell::new(HashSet::new());
        while let Some(key) = map.next_key_seed(UniqueKey {
            seen: &seen,
            path: self.path,
        })? {
            let child = if self.path.is_empty() {
                key
            } else {
                format!("{}.{key}", self.path)
            };
            map.next_value_seed(ShapeSeed { path: &child })?;
        }
        Ok(Shape::Mapping)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
        let mut index = 0;
        loop {
            let child = format!("{}[{index}]", self.path);
            if seq.next_element_seed(ShapeSeed { path: &child })?.is_none() {
                return Ok(Shape::List);
            }
            index += 1;
        }
    }
}

/// Reads a key and fails, at the key, if its mapping already had it.
struct UniqueKey<'a> {
    seen: &'a RefCell<HashSet<String>>,
    path: &'a str,
}

impl<'de> DeserializeSeed<'de> for UniqueKey<'_> {
    type Value = String;
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl UniqueKey<'_> {
    fn check<E: de::Error>(self, key: String) -> Result<String, E> {
        if self.seen.borrow_mut().insert(key.clone()) {
            Ok(key)
        } else {
            Err(E::custom(format!("{DUPLICATE}{}\u{0}{key}", self.path)))
        }
    }
}

impl<'de> Visitor<'de> for UniqueKey<'_> {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        self.check(v.to_string())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        self.check(v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        self.check(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        self.check(v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        self.check(v.to_string())
    }
    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        self.check("null".into())
    }
    // Complex keys are not something a stack file has; serde will refuse
    // them with a type error later.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<String, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok("{…}".into())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<String, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok("[…]".into())
    }
}

/// serde_norway's message split into its path and its text, without the
/// trailing position.
struct Parts {
    path: YamlPath,
    text: String,
}

/// The messages serde and serde_norway put after `path: `.
const MESSAGE_STARTS: &[&str] = &[
    "unknown field",
    "missing field",
    "invalid type",
    "invalid value",
    "invalid length",
    "unknown variant",
    "duplicate field",
    "`target`",
    DUPLICATE,
];

fn split(error: &serde_norway::Error) -> Parts {
    let mut text = error.to_string();
    // Drop the position of the problem itself (we report it as line:column);
    // a second one, in libyaml's "while parsing … at line …" context, stays.
    if let Some(at) = text.find(" at line ") {
        let tail = &text[at + " at line ".len()..];
        let mark_len = tail
            .find(|c: char| !(c.is_ascii_digit() || c == ' ' || "column".contains(c)))
            .unwrap_or(tail.len());
        text.replace_range(at..at + " at line ".len() + mark_len, "");
    }
    for start in MESSAGE_STARTS {
        if let Some(at) = text.find(start) {
            let prefix = text[..at].trim_end_matches(": ");
            if at > 0 && text[..at].ends_with(": ") {
                return Parts {
                    path: YamlPath::parse_serde(prefix),
                    text: text[at..].to_string(),
                };
            }
            if at == 0 {
                return Parts {
                    path: YamlPath::root(),
                    text,
                };
            }
        }
    }
    Parts {
        path: YamlPath::root(),
        text,
    }
}

/// The words between backticks, e.g. the allowed names serde lists.
fn backticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// Turns a serde_norway error into a located problem.
pub(crate) fn from_serde(source: &str, error: &serde_norway::Error) -> SpecProblem {
    let Parts { path, text } = split(error);
    let at = error
        .location()
        .map(|l| Position {
            line: l.line(),
            column: l.column(),
        })
        .unwrap_or_else(|| second_document(source).unwrap_or(Position::START));
    let problem =
        |at: Position, path: &YamlPath, message: String, help: Option<String>| SpecProblem {
            line: at.line,
            column: at.column,
            path: path.to_string(),
            message,
            help,
        };

    if let Some(rest) = text.strip_prefix(DUPLICATE) {
        let (map_path, key) = rest.split_once('\u{0}').unwrap_or(("", rest));
        let key_path = YamlPath::parse_serde(map_path).key(key);
        return problem(
            at,
            &key_path,
            format!("duplicate key `{key}`: a key may appear only once in a mapping"),
            Some("remove one of the two; YAML does not merge them".into()),
        );
    }
    if text.starts_with("unknown field") {
        let names = backticked(&text);
        let unknown = names.first().copied().unwrap_or_default();
        let allowed = names.get(1..).unwrap_or_default();
        let key_path = path.key(unknown);
        let help = unknown_key_help(&path, unknown, allowed);
        return problem(
            at,
            &key_path,
            format!("unknown key `{unknown}`"),
            Some(help),
        );
    }
    if text.starts_with("unknown variant") {
        let names = backticked(&text);
        let unknown = names.first().copied().unwrap_or_default();
        let allowed = names.get(1..).unwrap_or_default();
        let help = did_you_mean(unknown, allowed).map(|s| format!("did you mean `{s}`?"));
        return problem(
            at,
            &path,
            format!(
                "unknown value `{unknown}`: expected one of {}",
                allowed.join(", ")
            ),
            help,
        );
    }
    if let Some(field) = text.strip_prefix("missing field ") {
        let field = field.trim_matches('`');
        // Point at the key whose mapping lacks the field: that is where the
        // user adds it.
        let at = locate(source, &path, Part::Key, 0).unwrap_or(at);
        return problem(
            at,
            &path,
            format!("missing required key `{field}`"),
            missing_key_help(&path, field),
        );
    }
    if text.starts_with("`target`") {
        let at = locate(source, &path, Part::Key, 0).unwrap_or(at);
        return problem(at, &path, text, None);
    }
    if let Some(rest) = text
        .strip_prefix("invalid type: ")
        .or_else(|| text.strip_prefix("invalid value: "))
    {
        let (found_raw, expected) = rest.rsplit_once(", expected ").unwrap_or((rest, "?"));
        let expected = friendly_expected(&path, expected);
        let found = friendly_found(found_raw);
        let message = format!("expected {expected}, found {found}");
        let help = if expected.starts_with(super::de::QUOTED_VERSION) {
            // The number as written (1.30), not as read (1.3).
            let (offset, len) = token_span(source, at.line, at.column);
            let written = source.get(offset..offset + len).unwrap_or(&found);
            Some(format!(
                "write it in quotes, \"{written}\": unquoted, YAML reads it as the number {found}"
            ))
        } else {
            type_help(found_raw, &expected)
        };
        return problem(at, &path, message, help);
    }
    if text.starts_with("duplicate field") {
        let field = backticked(&text).first().copied().unwrap_or_default();
        let key_path = path.key(field);
        let at = locate(source, &key_path, Part::Key, 1).unwrap_or(at);
        return problem(at, &key_path, format!("duplicate key `{field}`"), None);
    }
    syntax_problem(source, at, &text)
}

/// Keys other tools (eksctl, Terraform modules) use for what the stack file
/// names differently, with the stack file's name.
const KEY_ALIASES: &[(&str, &str)] = &[
    ("instanceType", "machineType"),
    ("instanceTypes", "machineType"),
    ("minSize", "min"),
    ("maxSize", "max"),
    ("desiredCapacity", "desired"),
    ("desiredSize", "desired"),
    ("volumeSize", "diskSizeGb"),
    ("diskSize", "diskSizeGb"),
    ("kubernetesVersion", "version"),
];

fn unknown_key_help(path: &YamlPath, unknown: &str, allowed: &[&str]) -> String {
    if *path == YamlPath::of(&["target"]) && super::de::PLANNED_TARGETS.contains(&unknown) {
        return format!(
            "the {unknown} target is planned but not in this version; available: {}",
            allowed.join(", ")
        );
    }
    let alias = KEY_ALIASES
        .iter()
        .find(|(other, ours)| *other == unknown && allowed.contains(ours));
    if let Some((other, ours)) = alias {
        return format!("did you mean `{ours}`? (other tools call it {other})");
    }
    match did_you_mean(unknown, allowed) {
        Some(close) => format!("did you mean `{close}`?"),
        None if allowed.is_empty() => "no keys are allowed here".into(),
        None => format!("allowed here: {}", allowed.join(", ")),
    }
}

fn missing_key_help(path: &YamlPath, field: &str) -> Option<String> {
    if *path != YamlPath::root() {
        return block_missing_key_help(path, field);
    }
    match field {
        "name" => Some("add `name: my-stack` (lower-case letters, digits, '-')".into()),
        "target" => {
            Some("add `target: {kubeconfig: {}}` to use the current kubeconfig context".into())
        }
        _ => None,
    }
}

fn block_missing_key_help(path: &YamlPath, field: &str) -> Option<String> {
    (*path == YamlPath::of(&["target", "aws"]) && field == "region")
        .then(|| "add the region to create everything in, e.g. `region: us-east-1`".into())
}

/// serde's "expected" in user terms.
fn friendly_expected(path: &YamlPath, expected: &str) -> String {
    if expected.starts_with("struct ") || expected == "a map" || expected == "a YAML mapping" {
        return "a mapping".into();
    }
    if expected == "a YAML tag starting with '!'" {
        return match schema::allowed_values(path) {
            Some(values) => format!("one of {}", values.join(", ")),
            None => "a single word".into(),
        };
    }
    match expected {
        "u16" => "a whole number from 0 to 65535".into(),
        "u32" | "u64" => "a whole number (0 or more)".into(),
        "i64" | "i32" => "a whole number".into(),
        "a sequence" => "a list".into(),
        "a boolean" => "true or false".into(),
        "field identifier" => "a key name".into(),
        "variant identifier" => "a single word".into(),
        _ => expected.to_string(),
    }
}

/// serde's "found" (`string "x"`, `integer `3``, `map`) in user terms.
fn friendly_found(found: &str) -> String {
    match found {
        "map" => "a mapping".into(),
        "sequence" => "a list".into(),
        "unit value" => "an empty value".into(),
        _ => {
            if let Some(text) = found.strip_prefix("string ") {
                return format!("the text {text}");
            }
            // `integer `3``, `floating point `1.5``, `boolean `true``.
            match backticked(found).first() {
                Some(value) => (*value).to_string(),
                None => found.to_string(),
            }
        }
    }
}

fn type_help(found: &str, expected: &str) -> Option<String> {
    let word = found
        .strip_prefix("string ")
        .map(|s| s.trim_matches('"').to_ascii_lowercase());
    match (expected, word.as_deref()) {
        ("true or false", Some("yes" | "no" | "on" | "off" | "y" | "n")) => {
            Some("YAML 1.2 reads yes/no/on/off as text: write true or false".into())
        }
        (e, Some(w)) if e.starts_with("a whole number") && w.parse::<u64>().is_ok() => {
            Some("remove the quotes".into())
        }
        ("a mapping", Some(_)) => Some("indent the keys that belong here under this key".into()),
        _ => None,
    }
}

/// A libyaml error; tabs get their own message because their error reads
/// "cannot start any token", which nobody connects to a tab.
fn syntax_problem(source: &str, at: Position, text: &str) -> SpecProblem {
    let line_text = source.lines().nth(at.line.saturating_sub(1)).unwrap_or("");
    let indent: String = line_text
        .chars()
        .take_while(|c| *c == ' ' || *c == '\t')
        .collect();
    if let Some(tab) = indent.find('\t') {
        return SpecProblem {
            line: at.line,
            column: indent[..tab].chars().count() + 1,
            path: String::new(),
            message: "tab character in indentation: YAML indents with spaces only".into(),
            help: Some("replace the tab with spaces".into()),
        };
    }
    // An unclosed `{` or `[` is noticed only at the end of the file; the
    // bracket that was never closed is the useful place to point at.
    let last_content_line = source
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, _)| i + 1)
        .last()
        .unwrap_or(1);
    if at.line > last_content_line {
        if let Some(opened) = context_mark(text) {
            return SpecProblem {
                line: opened.line,
                column: opened.column,
                path: String::new(),
                message: format!("YAML syntax error: this bracket is never closed ({text})"),
                help: None,
            };
        }
    }
    let message = if text.starts_with("deserializing from YAML containing more than one document") {
        "the file holds more than one YAML document (`---`): a stack file is one document"
            .to_string()
    } else if text == "EOF while parsing a value" {
        "the file is empty: expected a mapping with at least `name` and `target`".to_string()
    } else {
        format!("YAML syntax error: {text}")
    };
    SpecProblem {
        line: at.line,
        column: at.column,
        path: String::new(),
        message,
        help: None,
    }
}

/// The position in libyaml's "while parsing a flow mapping at line L column
/// C" context, for flow collections only.
fn context_mark(text: &str) -> Option<Position> {
    let (_, context) = text.split_once("while parsing a flow ")?;
    let (_, mark) = context.split_once(" at line ")?;
    let (line, column) = mark.split_once(" column ")?;
    let column: String = column.chars().take_while(char::is_ascii_digit).collect();
    Some(Position {
        line: line.trim().parse().ok()?,
        column: column.parse().ok()?,
    })
}

/// Where a second YAML document starts (serde_norway reports no position).
fn second_document(source: &str) -> Option<Position> {
    let mut content_seen = false;
    for (index, line) in source.lines().enumerate() {
        let is_marker = line.starts_with("---") || line.starts_with("...");
        if is_marker && content_seen {
            return Some(Position {
                line: index + 1,
                column: 1,
            });
        }
        let trimmed = line.trim();
        if !trimmed.is_empty() && !trimmed.starts_with('#') && !is_marker {
            content_seen = true;
        }
    }
    None
}

/// Where a problem about `path` is reported.
pub(crate) fn position_of(source: &str, path: &YamlPath, part: Part) -> Position {
    locate_nearest(source, path, part)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_ignore_case_and_separators() {
        let keys = ["size", "storageClass", "replicas", "resources"];
        assert_eq!(did_you_mean("sise", &keys), Some("size"));
        assert_eq!(did_you_mean("storage_class", &keys), Some("storageClass"));
        assert_eq!(did_you_mean("replica", &keys), Some("replicas"));
        assert_eq!(did_you_mean("zzz", &keys), None);
    }

    #[test]
    fn duplicate_keys_point_at_the_second_one() {
        let problem = check_document("name: a\ntags:\n  a: b\n  a: c\n");
        let problem = problem.map(|p| (p.line, p.column, p.path, p.message));
        assert_eq!(
            problem,
            Some((
                4,
                3,
                "tags.a".to_string(),
                "duplicate key `a`: a key may appear only once in a mapping".to_string()
            ))
        );
    }

    #[test]
    fn document_shape() {
        assert!(check_document("name: a\n").is_none());
        let empty = check_document("# nothing\n").map(|p| p.message);
        assert!(empty.is_some_and(|m| m.starts_with("the file is empty")));
        let list = check_document("- a\n").map(|p| p.message);
        assert!(list.is_some_and(|m| m.contains("found a list")));
        let tab = check_document("a:\n\tb: c\n").map(|p| (p.line, p.column, p.message));
        assert!(tab.is_some_and(|(l, c, m)| l == 2 && c == 1 && m.starts_with("tab")));
        let two = check_document("a: 1\n---\nb: 2\n").map(|p| (p.line, p.message));
        assert!(two.is_some_and(|(l, m)| l == 2 && m.contains("more than one YAML document")));
    }
}
