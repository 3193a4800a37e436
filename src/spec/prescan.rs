//! One linear pass over the raw text before libyaml sees it, for what
//! libyaml handles badly or not at all:
//!
//! - characters YAML does not allow (NUL, other control characters): libyaml
//!   reports them at 1:1 with a byte offset;
//! - flow collections nested deeper than [`MAX_DEPTH`]: libyaml's scanner
//!   is quadratic in flow depth (a 200 KB `[[[…]]]` takes seconds, a 5 MB
//!   one hours), so the depth is judged here, in one pass;
//! - YAML tags (`!!binary`, `!foo`): serde_norway drops core tags silently
//!   and reports others as "found enum". No stack setting takes one.
//!
//! The scanner knows just enough YAML to tell where a node starts (after
//! `: `, `- `, `[`, `{`, `,`), quoted scalars, comments and block scalars.
//! Where it is unsure it errs towards letting libyaml judge.

use super::errors::SpecProblem;

/// The deepest nesting of `[ ]` and `{ }` a stack file may have; real ones
/// need three or four.
pub(crate) const MAX_DEPTH: usize = 32;

/// The first problem found, if any.
pub(crate) fn check(source: &str) -> Option<SpecProblem> {
    let mut depth = 0usize;
    // The indentation of the line that opened a block scalar (`|`, `>`):
    // lines indented deeper (and blank lines) are its content.
    let mut block_scalar: Option<usize> = None;
    // An open quoted scalar that continues onto the next line.
    let mut open_quote: Option<char> = None;
    for (index, line) in source.split('\n').enumerate() {
        let number = index + 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if let Some((column, c)) = line.chars().enumerate().find(|(_, c)| !allowed_in_yaml(*c)) {
            return Some(problem(
                number,
                column + 1,
                format!(
                    "the character U+{:04X} is not allowed in a YAML file",
                    u32::from(c)
                ),
                Some(if c == '\0' {
                    "a stack file is UTF-8 text: was it saved as UTF-16, or is it a binary file?"
                        .into()
                } else {
                    "remove it; write control characters in double quotes as escapes (\"\\t\")"
                        .into()
                }),
            ));
        }
        let indent = line.chars().take_while(|c| *c == ' ').count();
        if let Some(parent) = block_scalar {
            if line.trim().is_empty() || indent > parent {
                continue;
            }
            block_scalar = None;
        }
        let mut scan = Line {
            chars: line.chars().collect(),
            at: 0,
        };
        let mut node_start = true;
        if let Some(quote) = open_quote.take() {
            if !scan.skip_quoted(quote) {
                open_quote = Some(quote);
                continue;
            }
            node_start = false;
        }
        while let Some(c) = scan.peek() {
            let column = scan.at + 1;
            let prev_blank = scan.at == 0 || scan.chars[scan.at - 1].is_whitespace();
            match c {
                ' ' | '\t' => scan.at += 1,
                '#' if prev_blank => break,
                '[' | '{' if node_start || depth > 0 => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Some(problem(
                            number,
                            column,
                            format!(
                                "nested more than {MAX_DEPTH} levels deep in `[ ]` and `{{ }}`: \
                                 no stack setting needs that"
                            ),
                            Some("close the brackets opened before this one".into()),
                        ));
                    }
                    scan.at += 1;
                    node_start = true;
                }
                ']' | '}' if depth > 0 => {
                    depth -= 1;
                    scan.at += 1;
                    node_start = false;
                }
                ',' if depth > 0 => {
                    scan.at += 1;
                    node_start = true;
                }
                '-' | '?' if node_start && scan.blank_after() => {
                    scan.at += 1;
                }
                ':' if scan.blank_after() => {
                    scan.at += 1;
                    node_start = true;
                }
                ':' if depth > 0 && matches!(scan.next(), Some(',' | ']' | '}')) => {
                    scan.at += 1;
                    node_start = true;
                }
                '\'' | '"' if node_start => {
                    scan.at += 1;
                    if !scan.skip_quoted(c) {
                        open_quote = Some(c);
                        break;
                    }
                    node_start = false;
                }
                '&' if node_start => {
                    // An anchor comes before the node it names.
                    scan.skip_word();
                }
                '!' if node_start => {
                    let start = scan.at;
                    scan.skip_word();
                    let tag: String = scan.chars[start..scan.at].iter().collect();
                    return Some(problem(
                        number,
                        column,
                        format!("YAML tag `{tag}`: no stack setting is written with a tag"),
                        Some(format!(
                            "remove `{tag}` and write the value itself (quoted if it is text)"
                        )),
                    ));
                }
                '|' | '>' if node_start => {
                    block_scalar = Some(indent);
                    break;
                }
                _ => {
                    scan.at += 1;
                    node_start = false;
                }
            }
        }
    }
    None
}

/// YAML 1.2's printable set (§5.1), plus the line breaks split on.
fn allowed_in_yaml(c: char) -> bool {
    matches!(c, '\t' | '\r' | '\u{85}')
        || (' '..='~').contains(&c)
        || ('\u{A0}'..='\u{D7FF}').contains(&c)
        || ('\u{E000}'..='\u{FFFD}').contains(&c)
        || c >= '\u{10000}'
}

fn problem(line: usize, column: usize, message: String, help: Option<String>) -> SpecProblem {
    SpecProblem {
        line,
        column,
        path: String::new(),
        message,
        help,
    }
}

struct Line {
    chars: Vec<char>,
    at: usize,
}

impl Line {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn next(&self) -> Option<char> {
        self.chars.get(self.at + 1).copied()
    }

    fn blank_after(&self) -> bool {
        self.next().is_none_or(char::is_whitespace)
    }

    fn skip_word(&mut self) {
        while self
            .peek()
            .is_some_and(|c| !c.is_whitespace() && !matches!(c, ',' | '[' | ']' | '{' | '}'))
        {
            self.at += 1;
        }
    }

    /// Skips to just past the closing `quote`; false if the line ends first.
    fn skip_quoted(&mut self, quote: char) -> bool {
        while let Some(c) = self.peek() {
            self.at += 1;
            if quote == '"' && c == '\\' {
                self.at += 1;
            } else if c == quote {
                if quote == '\'' && self.peek() == Some('\'') {
                    self.at += 1;
                } else {
                    return true;
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn at(source: &str) -> Option<(usize, usize, String)> {
        check(source).map(|p| (p.line, p.column, p.message))
    }

    #[test]
    fn ordinary_files_pass() {
        let source = "\
name: demo # a comment with ! and [
target: {kubeconfig: {context: 'it''s [here'}}
tags: {a: \"x\\\" [\", b: hello!, c: '!not a tag'}
pachyderm:
  annotations:
    note: |
      !this is text
      [ and so is this
    other: >-
      {
  tolerations: [{key: a, value: \"b\"}]
list:
  - - - a
  - !
";
        // The last line's `!` is a tag (an empty one): YAML reads it so.
        assert_eq!(at(source).map(|(l, c, _)| (l, c)), Some((14, 5)));
        let without = source.replace("  - !\n", "");
        assert_eq!(at(&without), None);
    }

    #[test]
    fn tags_are_named_where_they_are() {
        let (line, column, message) = at("name: !!binary ZGVtbw==\n").unwrap();
        assert_eq!((line, column), (1, 7));
        assert!(message.contains("`!!binary`"), "{message}");
        assert_eq!(
            at("a:\n  b: &x !foo c\n").map(|(l, c, _)| (l, c)),
            Some((2, 9))
        );
        assert_eq!(at("a: [x, !t y]\n").map(|(l, c, _)| (l, c)), Some((1, 8)));
        assert_eq!(at("a: hello !world\n"), None);
        assert_eq!(at("a: x - !y\n"), None);
    }

    #[test]
    fn control_characters_are_located() {
        let source = format!("name: demo\n{}tags: {{a: b\0}}\n", "# c\n".repeat(26));
        let (line, column, message) = at(&source).unwrap();
        assert_eq!((line, column), (28, 12));
        assert!(message.contains("U+0000"), "{message}");
    }

    #[test]
    fn deep_nesting_is_refused_at_once_where_it_passes_the_limit() {
        let n = 250_000;
        let source = format!("name: demo\ntags: {}{}\n", "[".repeat(n), "]".repeat(n));
        let started = Instant::now();
        let (line, column, _) = at(&source).unwrap();
        assert!(
            started.elapsed().as_millis() < 1_000,
            "{:?}",
            started.elapsed()
        );
        assert_eq!((line, column), (2, 7 + MAX_DEPTH));
        let fine = format!("a: {}{}\n", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(at(&fine), None);
        // Brackets inside quotes and comments are text.
        let quoted = format!("a: '{}'\n# {}\n", "[".repeat(100), "{".repeat(100));
        assert_eq!(at(&quoted), None);
    }

    #[test]
    fn a_quote_may_span_lines() {
        assert_eq!(
            at("a: 'one\n  [[[ two' \nb: !x\n").map(|(l, _, _)| l),
            Some(3)
        );
    }
}
