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
        Diagnostic {
            file: file.to_string(),
            line,
            column,
            message: message.into(),
            hint: None,
            source_line: src
                .lines()
                .nth(line.saturating_sub(1))
                .map(|l| l.to_string()),
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
