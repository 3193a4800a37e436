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
use super::location::{locate, locate_nearest, Part, Position, Segment, YamlPath};
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
const TAGGED: &str = "\u{0}howdah-tagged\u{0}";

/// What the shape pass found beyond the first problem: where the document
/// holds a YAML null (`null`, `~`, or nothing after the `:`). serde_norway
/// reads a null as the text "null" (or "~", or "") where text is expected,
/// so [`null_as_text`] looks at what each one became.
#[derive(Debug, Default)]
pub(crate) struct Outline {
    pub(crate) nulls: Vec<YamlPath>,
}

/// Checks what serde cannot be asked to: YAML syntax (serde_norway's typed
/// path may report a type error before a later syntax error), duplicate keys
/// in every mapping (serde silently keeps the last one in a map), and the
/// kind of the top-level node.
pub(crate) fn check_document(source: &str) -> Result<Outline, SpecProblem> {
    let nulls = RefCell::new(Vec::new());
    let seed = ShapeSeed {
        path: "",
        at: YamlPath::root(),
        nulls: &nulls,
    };
    match seed.deserialize(serde_norway::Deserializer::from_str(source)) {
        Ok(Shape::Mapping) => Ok(Outline {
            nulls: nulls.into_inner(),
        }),
        Ok(shape) => Err(shape_problem(source, shape)),
        Err(error) => Err(from_serde(source, &error)),
    }
}

fn shape_problem(source: &str, shape: Shape) -> SpecProblem {
    match shape {
        Shape::Empty => SpecProblem {
            line: 1,
            column: 1,
            path: String::new(),
            message: "the file is empty: expected a mapping with at least `name` and `target`"
                .into(),
            help: Some("`howdah init` writes a commented starter file".into()),
        },
        _ => {
            let found = if shape == Shape::List {
                "a list"
            } else {
                "a single value"
            };
            let at = locate(source, &YamlPath::root(), Part::Value, 0).unwrap_or(Position::START);
            SpecProblem {
                line: at.line,
                column: at.column,
                path: String::new(),
                message: format!(
                    "the top level must be a mapping of keys (`name:`, `target:`, …), found {found}"
                ),
                help: None,
            }
        }
    }
}

/// Every null of the document that serde turned into text: `name: null`
/// would otherwise be the stack `null`, and `{a: null}` an annotation whose
/// value is the word. A null where a mapping, a list or an optional setting
/// goes means "the default" and stays allowed.
pub(crate) fn null_as_text<T: serde::Serialize>(
    source: &str,
    parsed: &T,
    nulls: &[YamlPath],
) -> Vec<SpecProblem> {
    if nulls.is_empty() {
        return Vec::new();
    }
    let Ok(tree) = serde_json::to_value(parsed) else {
        return Vec::new();
    };
    nulls
        .iter()
        .filter(|path| {
            let mut node = Some(&tree);
            for segment in path.segments() {
                node = match segment {
                    Segment::Key(key) => node.and_then(|n| n.get(key.as_str())),
                    Segment::Index(index) => node.and_then(|n| n.get(*index)),
                };
            }
            node.is_some_and(serde_json::Value::is_string)
        })
        .map(|path| {
            let at = position_of(source, path, Part::Value);
            SpecProblem {
                line: at.line,
                column: at.column,
                path: path.to_string(),
                message: "expected text, found an empty value (YAML reads `null`, `~` and \
                          nothing at all as null)"
                    .into(),
                help: Some(
                    "write the value; for empty text write \"\", for the word null write \"null\""
                        .into(),
                ),
            }
        })
        .collect()
}

struct ShapeSeed<'a> {
    /// serde_norway's rendering of the path, as in its messages.
    path: &'a str,
    at: YamlPath,
    nulls: &'a RefCell<Vec<YamlPath>>,
}

impl ShapeSeed<'_> {
    fn null(self) -> Shape {
        if !self.at.segments().is_empty() {
            self.nulls.borrow_mut().push(self.at);
        }
        Shape::Empty
    }
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
        Ok(self.null())
    }
    fn visit_none<E: de::Error>(self) -> Result<Shape, E> {
        Ok(self.null())
    }
    // serde_norway hands a node with a tag it does not know (`!foo x`) to
    // an enum visitor; no setting of a stack file is written with one.
    fn visit_enum<A: de::EnumAccess<'de>>(self, _: A) -> Result<Shape, A::Error> {
        Err(de::Error::custom(format!("{TAGGED}{}", self.path)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
        let seen = RefCell::new(HashSet::new());
        while let Some(key) = map.next_key_seed(UniqueKey {
            seen: &seen,
            path: self.path,
        })? {
            let at = self.at.key(&key);
            let child = if self.path.is_empty() {
                key
            } else {
                format!("{}.{key}", self.path)
            };
            map.next_value_seed(ShapeSeed {
                path: &child,
                at,
                nulls: self.nulls,
            })?;
        }
        Ok(Shape::Mapping)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
        let mut index = 0;
        loop {
            let child = format!("{}[{index}]", self.path);
            let seed = ShapeSeed {
                path: &child,
                at: self.at.index(index),
                nulls: self.nulls,
            };
            if seq.next_element_seed(seed)?.is_none() {
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
    TAGGED,
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
    if let Some(rest) = text.strip_prefix(TAGGED) {
        return problem(
            at,
            &YamlPath::parse_serde(rest),
            "a YAML tag (`!…`): no stack setting is written with a tag".into(),
            Some("remove the tag and write the value itself (quoted if it is text)".into()),
        );
    }
    if text.starts_with("unknown field") {
        let names = backticked(&text);
        let unknown = names.first().copied().unwrap_or_default();
        let allowed = names.get(1..).unwrap_or_default();
        let key_path = path.key(unknown);
        if unknown == "<<" {
            return problem(
                at,
                &key_path,
                "YAML merge keys (`<<: *name`) are not read by howdah".into(),
                Some("write the keys out here".into()),
            );
        }
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
    // An unclosed bracket or quote is noticed only at the end of the file;
    // the place where it was opened is the useful one to point at.
    let last_content_line = source
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, _)| i + 1)
        .last()
        .unwrap_or(1);
    if at.line > last_content_line {
        if let Some((what, opened)) = context_mark(text) {
            let message = if what.contains("quoted") {
                "this quote is never closed"
            } else {
                "this bracket is never closed"
            };
            return SpecProblem {
                line: opened.line,
                column: opened.column,
                path: String::new(),
                message: format!("YAML syntax error: {message}"),
                help: Some("close it where the value ends".into()),
            };
        }
    }
    let token: String = line_text
        .chars()
        .skip(at.column.saturating_sub(1))
        .take_while(|c| !c.is_whitespace() && !matches!(c, ',' | ']' | '}'))
        .collect();
    let (message, help) = syntax_sentence(text, &token, context_mark(text).map(|(_, p)| p));
    SpecProblem {
        line: at.line,
        column: at.column,
        path: String::new(),
        message,
        help,
    }
}

/// libyaml's (and serde_norway's) texts in words a user acts on: what is
/// wrong at the spot, and what to write instead. `found` is the character
/// at the spot, `opened` where the enclosing collection or quote started.
fn syntax_sentence(text: &str, token: &str, opened: Option<Position>) -> (String, Option<String>) {
    let opened_at = opened
        .map(|p| format!(" (opened at line {} column {})", p.line, p.column))
        .unwrap_or_default();
    let syntax = |what: &str| format!("YAML syntax error: {what}");
    let with = |what: &str, help: &str| (syntax(what), Some(help.to_string()));
    if text.starts_with("deserializing from YAML containing more than one document") {
        return (
            "the file holds more than one YAML document (`---`): a stack file is one document"
                .into(),
            None,
        );
    }
    if text == "EOF while parsing a value" {
        return (
            "the file is empty: expected a mapping with at least `name` and `target`".into(),
            None,
        );
    }
    let first = |prefix: &str| text.starts_with(prefix);
    if first("did not find expected key") {
        with(
            "this line is not indented like the keys of the mapping it is in",
            "line its key up with the keys above it (spaces only), or indent it further if it \
             belongs under the key above",
        )
    } else if first("did not find expected '-' indicator") {
        with(
            "this line does not line up with the list entries above it",
            "start every entry of a list at the same column, with `- `",
        )
    } else if first("mapping values are not allowed in this context") {
        with(
            "a `key: value` where only a value can be: either this line is indented deeper \
             than its siblings, or a value contains `: `",
            "indent the key like the keys beside it; put a value that contains `: ` in quotes",
        )
    } else if first("block sequence entries are not allowed in this context") {
        with(
            "a list entry (`- `) where a value was expected",
            "put the list on the lines below its key, or write it as [a, b]",
        )
    } else if first("could not find expected ':'") {
        with(
            "a key without its `:`",
            "write `key: value`; a quoted text must end with its closing quote",
        )
    } else if first("did not find expected ',' or ']'") {
        (
            syntax(&format!(
                "a list in [ ] is missing a `,` or its `]`{opened_at}"
            )),
            Some("separate the entries with `, ` and close the list".into()),
        )
    } else if first("did not find expected ',' or '}'") {
        (
            syntax(&format!(
                "a mapping in {{ }} is missing a `,` or its `}}`{opened_at}"
            )),
            Some("write {a: 1, b: 2}: a `, ` between entries, a space after each `:`".into()),
        )
    } else if first("found character that cannot start any token") {
        let shown = token
            .chars()
            .next()
            .map(|c| format!(" `{c}`"))
            .unwrap_or_default();
        with(
            &format!("a value cannot start with{shown}: YAML reserves it"),
            "put the value in quotes",
        )
    } else if first("unknown anchor") {
        let name = token.strip_prefix('*').unwrap_or("name");
        with(
            &format!("`*{name}` refers to an anchor (`&{name}`) that is not defined before it"),
            &format!("define `&{name}` first, or quote the value if the `*` is part of the text"),
        )
    } else if first("found unknown escape character") {
        with(
            "an unknown escape (`\\…`) in a double-quoted text",
            "write `\\\\` for a backslash, or use single quotes, where `\\` is plain text",
        )
    } else if first("found unexpected end of stream") {
        (
            syntax(&format!(
                "the file ends inside a quote or bracket{opened_at}"
            )),
            Some("close it where the value ends".into()),
        )
    } else if first("recursion limit exceeded") {
        with(
            "nested more than 128 levels deep: no stack setting needs that",
            "check the indentation: each nested key should be indented by two spaces",
        )
    } else if first("repetition limit exceeded") {
        with(
            "aliases (`*name`) expand into more nodes than a stack file can have",
            "write the values out instead of nesting aliases",
        )
    } else if first("found a tab character") {
        with(
            "tab character in indentation: YAML indents with spaces only",
            "replace the tab with spaces",
        )
    } else {
        (syntax(text), None)
    }
}

/// libyaml's "while parsing a flow mapping at line L column C" (or
/// "while scanning a quoted scalar …") context: what was open, and where.
fn context_mark(text: &str) -> Option<(&str, Position)> {
    let (_, context) = text
        .split_once("while parsing a ")
        .or_else(|| text.split_once("while scanning a "))?;
    let (what, mark) = context.split_once(" at line ")?;
    if !(what.starts_with("flow") || what.contains("quoted")) {
        return None;
    }
    let (line, column) = mark.split_once(" column ")?;
    let column: String = column.chars().take_while(char::is_ascii_digit).collect();
    Some((
        what,
        Position {
            line: line.trim().parse().ok()?,
            column: column.parse().ok()?,
        },
    ))
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
        let problem = check_document("name: a\ntags:\n  a: b\n  a: c\n").err();
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
        assert!(check_document("name: a\n").is_ok());
        let empty = check_document("# nothing\n").err().map(|p| p.message);
        assert!(empty.is_some_and(|m| m.starts_with("the file is empty")));
        let list = check_document("- a\n").err().map(|p| p.message);
        assert!(list.is_some_and(|m| m.contains("found a list")));
        let tab = check_document("a:\n\tb: c\n")
            .err()
            .map(|p| (p.line, p.column, p.message));
        assert!(tab.is_some_and(|(l, c, m)| l == 2 && c == 1 && m.starts_with("tab")));
        let two = check_document("a: 1\n---\nb: 2\n")
            .err()
            .map(|p| (p.line, p.message));
        assert!(two.is_some_and(|(l, m)| l == 2 && m.contains("more than one YAML document")));
    }
}
