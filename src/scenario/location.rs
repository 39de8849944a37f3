//! Maps a path in a YAML document (`steps[1].assert[0]`) to where it was written, so semantic
//! errors found after deserialisation still point at a line and column.

use std::collections::HashMap;
use std::fmt::Write;

use super::yaml::{Node, Style, Value};

/// Where a node starts, and how a byte offset inside a scalar maps to a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Columns between the node start and its first content character (1 for quoted scalars);
    /// `None` when offsets inside the scalar cannot be mapped to a column (block scalars,
    /// escapes, several lines).
    pub content_shift: Option<usize>,
    /// True for a mapping or sequence (errors about it point at its key instead).
    pub collection: bool,
}

impl Position {
    /// The column of byte `offset` inside the scalar, falling back to the node start.
    pub fn column_at(&self, offset: usize) -> usize {
        match self.content_shift {
            Some(shift) => self.column + shift + offset,
            None => self.column,
        }
    }

    fn of(node: &Node) -> Position {
        let (content_shift, collection) = match &node.value {
            Value::Scalar {
                style, verbatim, ..
            } => {
                let shift = match style {
                    Style::Plain => Some(0),
                    // Only when the written text equals the value (no escapes or folding).
                    Style::SingleQuoted | Style::DoubleQuoted => verbatim.then_some(1),
                    Style::Literal | Style::Folded => None,
                };
                (shift, false)
            }
            Value::Seq(_) | Value::Map(_) => (None, true),
        };
        Position {
            line: node.mark.line,
            column: node.mark.column,
            content_shift,
            collection,
        }
    }
}

/// Path → position index of one YAML document.
#[derive(Debug, Default)]
pub struct LocationIndex {
    values: HashMap<String, Position>,
    keys: HashMap<String, Position>,
}

impl LocationIndex {
    /// Indexes every node of a parsed document.
    pub fn build(root: &Node) -> LocationIndex {
        let mut index = LocationIndex::default();
        index.walk(root, &mut String::new());
        index
    }

    fn walk(&mut self, node: &Node, path: &mut String) {
        self.values.insert(path.clone(), Position::of(node));
        let len = path.len();
        match &node.value {
            Value::Scalar { .. } => {}
            Value::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    // Writing to a String cannot fail.
                    let _ = write!(path, "[{i}]");
                    self.walk(item, path);
                    path.truncate(len);
                }
            }
            Value::Map(entries) => {
                for (key, value) in entries {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(key.scalar().unwrap_or("?"));
                    self.keys.insert(path.clone(), Position::of(key));
                    self.walk(value, path);
                    path.truncate(len);
                }
            }
        }
    }

    /// Position of the value at `path`.
    pub fn value(&self, path: &str) -> Option<Position> {
        self.values.get(path).copied()
    }

    /// Position of the key of the mapping entry at `path`.
    pub fn key(&self, path: &str) -> Option<Position> {
        self.keys.get(path).copied()
    }

    /// Position of the value at `path`, else of the nearest ancestor written in the file.
    /// Mappings and sequences are pointed at by their key.
    pub fn nearest(&self, path: &str) -> Position {
        let mut p = path.to_string();
        loop {
            if let Some(pos) = self.value(&p) {
                if pos.collection {
                    if let Some(k) = self.key(&p) {
                        return k;
                    }
                }
                return pos;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p.truncate(i),
                None => {
                    return self.value("").unwrap_or(Position {
                        line: 1,
                        column: 1,
                        content_shift: None,
                        collection: true,
                    })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::yaml::parse;

    const DOC: &str = "name: demo\nsteps:\n  - name: a\n    http:\n      url: \"https://x/${{ vars.y }}\"\n    assert:\n      - status == 200\n      - duration < 1s\n";

    #[test]
    fn positions_are_one_based_lines_and_columns() {
        let idx = LocationIndex::build(&parse(DOC).unwrap());
        assert_eq!(idx.value("name").map(|p| (p.line, p.column)), Some((1, 7)));
        let url = idx.value("steps[0].http.url").unwrap();
        assert_eq!((url.line, url.column), (5, 12));
        assert_eq!(url.column_at(10), 23);
        let a1 = idx.value("steps[0].assert[1]").unwrap();
        assert_eq!((a1.line, a1.column), (8, 9));
        assert_eq!(
            idx.key("steps[0].http").map(|p| (p.line, p.column)),
            Some((4, 5))
        );
    }

    #[test]
    fn nearest_falls_back_to_the_parent() {
        let idx = LocationIndex::build(&parse(DOC).unwrap());
        assert_eq!(idx.nearest("steps[0].http.headers.X").line, 4);
    }
}
