//! Maps a path in a YAML document (`steps[1].assert[0]`) to where it was written, so semantic
//! errors found after deserialisation still point at a line and column.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

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
}

enum Frame {
    Map {
        key: Option<String>,
        expect_key: bool,
    },
    Seq {
        index: usize,
    },
}

/// Path → position index of one YAML document.
#[derive(Debug, Default)]
pub struct LocationIndex {
    values: HashMap<String, Position>,
    keys: HashMap<String, Position>,
}

struct Builder<'a> {
    src: &'a str,
    stack: Vec<Frame>,
    index: LocationIndex,
}

impl Builder<'_> {
    fn path(&self) -> String {
        let mut p = String::new();
        for f in &self.stack {
            match f {
                Frame::Map { key: Some(k), .. } => {
                    if !p.is_empty() {
                        p.push('.');
                    }
                    p.push_str(k);
                }
                Frame::Map { key: None, .. } => {}
                Frame::Seq { index } => p.push_str(&format!("[{index}]")),
            }
        }
        p
    }

    fn position(&self, mark: &Marker, style: Option<TScalarStyle>, value: &str) -> Position {
        let shift = match style {
            Some(TScalarStyle::Plain) => Some(0),
            Some(TScalarStyle::SingleQuoted) | Some(TScalarStyle::DoubleQuoted) => {
                // Only when the written text equals the value (no escapes or folding).
                let start = mark.index();
                let written = self.src.get(start + 1..start + 1 + value.len());
                (written == Some(value)).then_some(1)
            }
            _ => None,
        };
        Position {
            line: mark.line(),
            column: mark.col() + 1,
            content_shift: shift,
            collection: style.is_none() && value.is_empty(),
        }
    }

    /// Called when a node (scalar or collection start) begins at `mark`.
    fn on_node(&mut self, pos: Position, key_text: Option<&str>) {
        let is_key = matches!(
            self.stack.last(),
            Some(Frame::Map {
                expect_key: true,
                ..
            })
        );
        if is_key {
            if let Some(Frame::Map { key, expect_key }) = self.stack.last_mut() {
                *key = Some(key_text.unwrap_or("?").to_string());
                *expect_key = false;
            }
            let path = self.path();
            self.index.keys.insert(path, pos);
        } else {
            let path = self.path();
            self.index.values.insert(path, pos);
        }
    }

    /// Called when a value has been fully read.
    fn after_value(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Map { expect_key, .. }) => *expect_key = true,
            Some(Frame::Seq { index }) => *index += 1,
            None => {}
        }
    }

    fn is_key_position(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Frame::Map {
                expect_key: true,
                ..
            })
        )
    }
}

impl MarkedEventReceiver for Builder<'_> {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(value, style, ..) => {
                let pos = self.position(&mark, Some(style), &value);
                let was_key = self.is_key_position();
                self.on_node(pos, Some(&value));
                if !was_key {
                    self.after_value();
                }
            }
            Event::Alias(_) => {
                let pos = self.position(&mark, None, "*");
                let was_key = self.is_key_position();
                self.on_node(pos, None);
                if !was_key {
                    self.after_value();
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let pos = self.position(&mark, None, "");
                self.on_node(pos, None);
                self.stack.push(if matches!(ev, Event::MappingStart(..)) {
                    Frame::Map {
                        key: None,
                        expect_key: true,
                    }
                } else {
                    Frame::Seq { index: 0 }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.after_value();
            }
            _ => {}
        }
    }
}

impl LocationIndex {
    /// Builds the index; a document that does not parse gives an empty index (serde reports
    /// the syntax error with its own location).
    pub fn build(src: &str) -> LocationIndex {
        let mut b = Builder {
            src,
            stack: Vec::new(),
            index: LocationIndex::default(),
        };
        let mut parser = Parser::new_from_str(src);
        if parser.load(&mut b, false).is_err() {
            return LocationIndex::default();
        }
        b.index
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

    const DOC: &str = "name: demo\nsteps:\n  - name: a\n    http:\n      url: \"https://x/${{ vars.y }}\"\n    assert:\n      - status == 200\n      - duration < 1s\n";

    #[test]
    fn positions_are_one_based_lines_and_columns() {
        let idx = LocationIndex::build(DOC);
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
        let idx = LocationIndex::build(DOC);
        assert_eq!(idx.nearest("steps[0].http.headers.X").line, 4);
    }
}
