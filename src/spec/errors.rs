//! What a user sees when a stack file is wrong: every problem with its file,
//! line, column, the dotted path of the offending key, what was expected and,
//! where we can tell, what to write instead.

use std::fmt;

use miette::{
    Diagnostic, LabeledSpan, MietteError, MietteSpanContents, NamedSource, SourceCode, SourceSpan,
    SpanContents,
};

/// One mistake in a stack file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecProblem {
    /// 1-based line; 0 when the problem concerns the whole file (e.g. it
    /// could not be read).
    pub line: usize,
    /// 1-based column in characters; 0 together with `line`.
    pub column: usize,
    /// Dotted path of the key or value, e.g. `pachyderm.etcd.size` or
    /// `pachyderm.tolerations[0].effect`; empty for the document itself.
    pub path: String,
    /// What is wrong and what was expected.
    pub message: String,
    /// What to write instead, when we can tell.
    pub help: Option<String>,
}

impl SpecProblem {
    /// The problem without the file name: `12:5: path: message (help: …)`.
    fn write_located(&self, file_name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{file_name}: ")?;
        } else {
            write!(f, "{file_name}:{}:{}: ", self.line, self.column)?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)?;
        if let Some(help) = &self.help {
            write!(f, " (help: {help})")?;
        }
        Ok(())
    }

    /// `path: message (help: …)`, the text the corpus expectations match.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        if !self.path.is_empty() {
            out.push_str(&self.path);
            out.push_str(": ");
        }
        out.push_str(&self.message);
        if let Some(help) = &self.help {
            out.push_str(" (help: ");
            out.push_str(help);
            out.push(')');
        }
        out
    }
}

/// A stack file that cannot be used, with every problem found in it.
///
/// `Display` prints one problem per line
/// (`howdah.yaml:12:5: pachyderm.etcd.size: invalid quantity …`), which is
/// what CI logs and `--output json` consumers want; the `miette::Diagnostic`
/// impl adds the source with each problem underlined for terminals.
pub struct SpecError {
    file_name: String,
    source: ReportSource,
    problems: Vec<SpecProblem>,
}

impl SpecError {
    /// `problems` must not be empty; problems are kept in file order.
    pub(crate) fn new(file_name: &str, source: &str, mut problems: Vec<SpecProblem>) -> Self {
        problems.sort_by_key(|p| (p.line, p.column));
        problems.dedup();
        SpecError {
            file_name: file_name.to_string(),
            source: ReportSource(NamedSource::new(file_name, source.to_string())),
            problems,
        }
    }

    /// Every problem, in file order.
    pub fn problems(&self) -> &[SpecProblem] {
        &self.problems
    }

    /// The file name the problems refer to, as given to `parse`/`load`.
    pub fn file_name(&self) -> &str {
        &self.file_name
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            problem.write_located(&self.file_name, f)?;
        }
        Ok(())
    }
}

impl fmt::Debug for SpecError {
    // The source is left out: it can be long and is not what a reader of a
    // debug print is after.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpecError")
            .field("file_name", &self.file_name)
            .field("problems", &self.problems)
            .finish()
    }
}

impl std::error::Error for SpecError {}

impl Diagnostic for SpecError {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new("howdah::spec"))
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let source = self.source.0.inner();
        let labels = self.problems.iter().filter(|p| p.line > 0).map(move |p| {
            let (offset, len) = token_span(source, p.line, p.column);
            LabeledSpan::new(Some(p.message.clone()), offset, len)
        });
        Some(Box::new(labels))
    }
}

/// Lines shown above and below each problem in the report.
const CONTEXT_BEFORE: usize = 2;
const CONTEXT_AFTER: usize = 1;

/// The stack file as the graphical report reads it: each problem with
/// [`CONTEXT_BEFORE`] lines above and [`CONTEXT_AFTER`] below.
///
/// miette (7.6) decides whether two problems share one snippet by adding
/// a snippet's `line_count` to its first line, but its own sources report
/// as `line_count` the line number where the snippet *ends*, so any two
/// problems where the second is less than about twice as far down the
/// file as the first were drawn as one snippet with every line between
/// them. Here `line_count` is the number of lines in the snippet, so
/// snippets merge only when they touch.
struct ReportSource(NamedSource<String>);

impl SourceCode for ReportSource {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        _context_lines_before: usize,
        _context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let contents = self.0.read_span(span, CONTEXT_BEFORE, CONTEXT_AFTER)?;
        let data = contents.data();
        let lines = data.split(|&b| b == b'\n').count() - usize::from(data.ends_with(b"\n"));
        Ok(Box::new(MietteSpanContents::new_named(
            contents.name().unwrap_or_default().to_string(),
            data,
            *contents.span(),
            contents.line(),
            contents.column(),
            lines,
        )))
    }
}

/// Byte offset of a 1-based line and character column.
pub(crate) fn byte_offset(source: &str, line: usize, column: usize) -> usize {
    let mut offset = 0;
    for (index, text) in source.split_inclusive('\n').enumerate() {
        if index + 1 == line {
            let within: usize = text
                .chars()
                .take(column.saturating_sub(1))
                .map(char::len_utf8)
                .sum();
            return offset + within;
        }
        offset += text.len();
    }
    source.len()
}

/// The span of the YAML token starting at a position, for underlining: a
/// quoted scalar through its closing quote, otherwise up to the end of the
/// plain scalar or key.
pub(crate) fn token_span(source: &str, line: usize, column: usize) -> (usize, usize) {
    let start = byte_offset(source, line, column);
    let rest = &source[start..];
    let mut chars = rest.char_indices().peekable();
    let end = match chars.peek() {
        Some(&(_, quote @ ('"' | '\''))) => {
            chars.next();
            chars
                .find(|&(_, c)| c == quote || c == '\n')
                .map_or(rest.len(), |(i, c)| if c == '\n' { i } else { i + 1 })
        }
        _ => {
            let mut end = rest.len();
            let mut previous = ' ';
            let mut it = rest.char_indices().peekable();
            while let Some((i, c)) = it.next() {
                let next = it.peek().map_or('\n', |&(_, n)| n);
                let stops = c == '\n'
                    || matches!(c, ',' | ']' | '}')
                    || (c == ':' && (next == ' ' || next == '\n'))
                    || (c == '#' && previous == ' ');
                if stops {
                    end = i;
                    break;
                }
                previous = c;
            }
            rest[..end].trim_end().len()
        }
    };
    (start, end.max(1).min(rest.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(line: usize, column: usize, help: Option<&str>) -> SpecProblem {
        SpecProblem {
            line,
            column,
            path: "pachyderm.etcd.size".into(),
            message: "invalid quantity \"10GB\"".into(),
            help: help.map(String::from),
        }
    }

    #[test]
    fn display_prints_one_problem_per_line_in_file_order() {
        let error = SpecError::new(
            "howdah.yaml",
            "a: 1\n",
            vec![problem(12, 5, Some("use 10Gi")), problem(3, 1, None)],
        );
        assert_eq!(
            error.to_string(),
            "howdah.yaml:3:1: pachyderm.etcd.size: invalid quantity \"10GB\"\n\
             howdah.yaml:12:5: pachyderm.etcd.size: invalid quantity \"10GB\" (help: use 10Gi)"
        );
    }

    #[test]
    fn token_span_covers_the_value() {
        let source = "a:\n  size: 10GB # comment\n  b: \"x y\"\n  c: {k: v}\n";
        let (offset, len) = token_span(source, 2, 9);
        assert_eq!(&source[offset..offset + len], "10GB");
        let (offset, len) = token_span(source, 2, 3);
        assert_eq!(&source[offset..offset + len], "size");
        let (offset, len) = token_span(source, 3, 6);
        assert_eq!(&source[offset..offset + len], "\"x y\"");
        let (offset, len) = token_span(source, 4, 7);
        assert_eq!(&source[offset..offset + len], "k");
    }

    #[test]
    fn byte_offset_counts_characters() {
        assert_eq!(byte_offset("é: x\nb: y\n", 1, 4), 4);
        assert_eq!(byte_offset("é: x\nb: y\n", 2, 1), 6);
    }
}
