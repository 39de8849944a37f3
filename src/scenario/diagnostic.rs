//! A load-time error with its place in the file, printed rustc-style with the source line,
//! a caret, and a hint.

use std::fmt;

/// One problem in one scenario file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    /// 1-based line, 0 when the problem is not in a file (e.g. an unreadable path).
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    pub message: String,
    /// "did you mean `x`?" and other advice.
    pub hint: Option<String>,
    /// The source line, for the caret display.
    pub source_line: Option<String>,
}

impl Diagnostic {
    pub fn new(
        file: &str,
        src: &str,
        line: usize,
        column: usize,
        message: impl Into<String>,
    ) -> Self {
        let source_line = src.lines().nth(line.saturating_sub(1)).map(str::to_string);
        Diagnostic::at(file, line, column, message.into(), source_line)
    }

    /// Like [`Diagnostic::new`], with the source line taken from an index of the file's lines
    /// (constant time, where `new` scans the file).
    pub fn in_source(
        file: &str,
        lines: &SourceLines,
        line: usize,
        column: usize,
        message: impl Into<String>,
    ) -> Self {
        let source_line = lines.line(line).map(str::to_string);
        Diagnostic::at(file, line, column, message.into(), source_line)
    }

    fn at(
        file: &str,
        line: usize,
        column: usize,
        message: String,
        source_line: Option<String>,
    ) -> Self {
        Diagnostic {
            file: file.to_string(),
            line,
            column,
            message,
            hint: None,
            source_line,
        }
    }

    pub fn with_hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }

    /// `file:line:column`
    pub fn location(&self) -> String {
        format!("{}:{}:{}", self.file, self.line, self.column)
    }
}

/// Where each line of a file starts, so a diagnostic finds its source line without a scan.
#[derive(Debug, Clone)]
pub struct SourceLines<'a> {
    src: &'a str,
    starts: Vec<usize>,
}

impl<'a> SourceLines<'a> {
    pub fn new(src: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        SourceLines { src, starts }
    }

    /// The 1-based `line`, without its line break (as `str::lines` gives it).
    pub fn line(&self, line: usize) -> Option<&'a str> {
        let start = *self.starts.get(line.checked_sub(1)?)?;
        if start >= self.src.len() {
            return None;
        }
        let end = self.starts.get(line).map_or(self.src.len(), |e| e - 1);
        let text = self.src.get(start..end)?;
        Some(text.strip_suffix('\r').unwrap_or(text))
    }

    /// Number of lines, as `str::lines().count()` counts them.
    pub fn count(&self) -> usize {
        if self.src.ends_with('\n') || self.src.is_empty() {
            self.starts.len() - 1
        } else {
            self.starts.len()
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: error: {}", self.file, self.message)?;
        } else {
            write!(f, "{}: error: {}", self.location(), self.message)?;
        }
        if let Some(src) = &self.source_line {
            let num = self.line.to_string();
            let pad = " ".repeat(num.len());
            // Tabs keep their width so the caret lines up.
            let lead: String = src
                .chars()
                .take(self.column.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(f, "\n {pad} |\n {num} | {src}\n {pad} | {lead}^")?;
        }
        if let Some(h) = &self.hint {
            let pad = " ".repeat(self.line.to_string().len());
            write!(f, "\n {pad} = hint: {h}")?;
        }
        Ok(())
    }
}

/// Every error, a blank line after each, then the count and what it means:
/// `2 errors found; nothing was run`. The one way `validate`, `run`, `serve` and `slo` print
/// load errors.
pub fn render_all<T: fmt::Display>(errors: &[T], consequence: &str) -> String {
    let mut out = String::new();
    for e in errors {
        out.push_str(&format!("{e}\n\n"));
    }
    let plural = if errors.len() == 1 { "" } else { "s" };
    out.push_str(&format!(
        "{} error{plural} found; {consequence}\n",
        errors.len()
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_errors_are_rendered_with_their_count() {
        let one = render_all(&["a: error: x"], "nothing was run");
        assert_eq!(one, "a: error: x\n\n1 error found; nothing was run\n");
        let two = render_all(&["x", "y"], "no rules generated");
        assert!(
            two.ends_with("2 errors found; no rules generated\n"),
            "{two}"
        );
    }

    #[test]
    fn source_lines_match_str_lines() {
        for src in ["", "a", "a\n", "a\nb", "a\r\nb\r\n", "\n\n", "x\n\ny"] {
            let idx = SourceLines::new(src);
            let expected: Vec<&str> = src.lines().collect();
            let got: Vec<&str> = (1..=expected.len() + 2)
                .filter_map(|l| idx.line(l))
                .collect();
            assert_eq!(got, expected, "{src:?}");
            assert_eq!(idx.count(), expected.len(), "{src:?}");
            assert_eq!(idx.line(0), None);
        }
    }
}
