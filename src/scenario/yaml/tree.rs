//! One pass of yaml-rust2 events into a tree of nodes that know where they were written:
//! aliases resolved (their expansion bounded), nesting bounded, duplicate keys and a second
//! document rejected, syntax errors placed where yaml-rust2 puts them.

use std::collections::{HashMap, HashSet};

use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, ScanError, TScalarStyle};

use super::error::SyntaxError;
use super::text::{Mark, TextMap};

/// Deepest nesting of mappings and sequences (aliases included).
pub const MAX_DEPTH: usize = 128;
/// Aliases may add this many nodes, plus [`ALIAS_FACTOR`] per node written in the file.
const ALIAS_BASE: usize = 10_000;
const ALIAS_FACTOR: usize = 10;

/// How a scalar was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    Literal,
    Folded,
}

/// A node and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub mark: Mark,
    /// An explicit tag, `!!str` or `!local`.
    pub tag: Option<Box<str>>,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar {
        text: String,
        style: Style,
        /// The value is written as is right after the node start (after the quote when
        /// quoted): offsets inside it are columns.
        verbatim: bool,
    },
    Seq(Vec<Node>),
    /// Entries in the order written.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// An empty plain scalar (null) at `mark`.
    pub fn null(mark: Mark) -> Node {
        Node {
            mark,
            tag: None,
            value: Value::Scalar {
                text: String::new(),
                style: Style::Plain,
                verbatim: true,
            },
        }
    }

    /// The text of a scalar.
    pub fn scalar(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// An empty plain scalar without a tag: nothing was written.
    fn is_implicit_null(&self) -> bool {
        self.tag.is_none()
            && matches!(&self.value, Value::Scalar { text, style: Style::Plain, .. } if text.is_empty())
    }

    fn count(&self) -> usize {
        match &self.value {
            Value::Scalar { .. } => 1,
            Value::Seq(items) => 1 + items.iter().map(Node::count).sum::<usize>(),
            Value::Map(entries) => {
                1 + entries
                    .iter()
                    .map(|(k, v)| k.count() + v.count())
                    .sum::<usize>()
            }
        }
    }
}

/// Parses one YAML document. An empty text is a null node.
pub fn parse(src: &str) -> Result<Node, SyntaxError> {
    // yaml-rust2 would read a byte order mark as part of the first key.
    let (body, skipped) = match src.strip_prefix('\u{feff}') {
        Some(rest) => (rest, 1),
        None => (src, 0),
    };
    let mut b = Builder::new(src, skipped);
    let mut parser = Parser::new_from_str(body);
    loop {
        let (event, marker) = parser.next_token().map_err(|e| b.scan_error(&e))?;
        if let Some(root) = b.on_event(event, &marker)? {
            return Ok(root);
        }
    }
}

/// An open mapping or sequence.
struct Frame {
    node: Node,
    anchor: usize,
    /// Written with `{` or `[`.
    flow: bool,
    /// Greatest height of a child.
    height: usize,
    /// A mapping's key waiting for its value.
    key: Option<Node>,
    /// A mapping's scalar keys so far, for duplicates.
    keys: HashSet<String>,
}

struct Anchored {
    node: Node,
    nodes: usize,
    height: usize,
}

struct Builder<'a> {
    text: TextMap<'a>,
    stack: Vec<Frame>,
    root: Option<Node>,
    documents: usize,
    anchors: HashMap<usize, Anchored>,
    /// Nodes written in the file, and nodes added by aliases.
    written: usize,
    copied: usize,
}

fn style(s: TScalarStyle) -> Style {
    match s {
        TScalarStyle::Plain => Style::Plain,
        TScalarStyle::SingleQuoted => Style::SingleQuoted,
        TScalarStyle::DoubleQuoted => Style::DoubleQuoted,
        TScalarStyle::Literal => Style::Literal,
        TScalarStyle::Folded => Style::Folded,
    }
}

/// `!!str` for the core schema's tags, else the tag as written.
fn tag_text(tag: Option<Tag>) -> Option<Box<str>> {
    let t = tag?;
    let text = if t.handle == "tag:yaml.org,2002:" {
        format!("!!{}", t.suffix)
    } else {
        format!("{}{}", t.handle, t.suffix)
    };
    Some(text.into_boxed_str())
}

impl<'a> Builder<'a> {
    fn new(src: &'a str, skipped: usize) -> Self {
        Builder {
            text: TextMap::new(src, skipped),
            stack: Vec::new(),
            root: None,
            documents: 0,
            anchors: HashMap::new(),
            written: 0,
            copied: 0,
        }
    }

    fn error(&self, mark: Mark, message: impl Into<String>) -> SyntaxError {
        SyntaxError {
            line: mark.line,
            column: mark.column,
            message: message.into(),
        }
    }

    /// yaml-rust2's error; at the end of the text, at the start of the flow collection left
    /// open (an unclosed quote is already placed at the quote).
    fn scan_error(&self, e: &ScanError) -> SyntaxError {
        let open_flow = self.stack.last().filter(|f| f.flow);
        let mark = match open_flow {
            Some(frame) if self.text.at_end(e.marker()) => frame.node.mark,
            _ => self.text.mark(e.marker()),
        };
        self.error(mark, e.info())
    }

    /// Handles one event; returns the root once the stream has ended.
    fn on_event(&mut self, event: Event, marker: &Marker) -> Result<Option<Node>, SyntaxError> {
        let mark = self.text.mark(marker);
        match event {
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(self.error(
                        mark,
                        "a scenario file holds one YAML document; this is a second one",
                    ));
                }
            }
            Event::StreamEnd => {
                let end = self.text.end_of_last_line();
                return Ok(Some(self.root.take().unwrap_or_else(|| Node::null(end))));
            }
            Event::Scalar(text, s, anchor, tag) => {
                self.written += 1;
                let verbatim = self.verbatim(&mark, s, &text);
                let node = Node {
                    mark,
                    tag: tag_text(tag),
                    value: Value::Scalar {
                        text,
                        style: style(s),
                        verbatim,
                    },
                };
                self.attach(node, 1, anchor)?;
            }
            Event::Alias(id) => self.alias(id, mark)?,
            Event::SequenceStart(anchor, tag) => {
                self.open(mark, anchor, tag, Value::Seq(Vec::new()))?
            }
            Event::MappingStart(anchor, tag) => {
                self.open(mark, anchor, tag, Value::Map(Vec::new()))?
            }
            Event::SequenceEnd | Event::MappingEnd => self.close()?,
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
        }
        Ok(None)
    }

    /// True when `text` is written right after the node start (after the opening quote).
    fn verbatim(&self, mark: &Mark, s: TScalarStyle, text: &str) -> bool {
        let start = match s {
            TScalarStyle::Plain => mark.index,
            TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted => mark.index + 1,
            _ => return false,
        };
        self.text
            .src()
            .get(start..)
            .is_some_and(|rest| rest.starts_with(text))
    }

    fn open(
        &mut self,
        mark: Mark,
        anchor: usize,
        tag: Option<Tag>,
        value: Value,
    ) -> Result<(), SyntaxError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(self.error(
                mark,
                format!("nested too deeply: at most {MAX_DEPTH} levels of mappings and sequences"),
            ));
        }
        self.written += 1;
        let opener = self
            .text
            .src()
            .get(mark.index..)
            .and_then(|s| s.chars().next());
        self.stack.push(Frame {
            node: Node {
                mark,
                tag: tag_text(tag),
                value,
            },
            anchor,
            flow: matches!(opener, Some('{' | '[')),
            height: 0,
            key: None,
            keys: HashSet::new(),
        });
        Ok(())
    }

    fn close(&mut self) -> Result<(), SyntaxError> {
        let Some(frame) = self.stack.pop() else {
            return Ok(());
        };
        // An empty collection is one level too.
        self.attach(frame.node, frame.height.max(1) + 1, frame.anchor)
    }

    fn alias(&mut self, id: usize, mark: Mark) -> Result<(), SyntaxError> {
        let Some(a) = self.anchors.get(&id) else {
            return Err(self.error(mark, "an alias cannot refer to the node that contains it"));
        };
        let budget = ALIAS_BASE.saturating_add(self.written.saturating_mul(ALIAS_FACTOR));
        if self.copied.saturating_add(a.nodes) > budget {
            return Err(self.error(
                mark,
                format!("aliases expand to too many nodes (more than {budget})"),
            ));
        }
        if self.stack.len() + a.height > MAX_DEPTH + 1 {
            return Err(self.error(
                mark,
                format!("nested too deeply: at most {MAX_DEPTH} levels of mappings and sequences"),
            ));
        }
        self.copied += a.nodes;
        let (mut node, height) = (a.node.clone(), a.height);
        node.mark = mark;
        // Written elsewhere: offsets inside it are not columns after the alias.
        if let Value::Scalar { verbatim, .. } = &mut node.value {
            *verbatim = false;
        }
        self.attach(node, height, 0)
    }

    /// Adds a finished node to its parent (or makes it the root).
    fn attach(&mut self, mut node: Node, height: usize, anchor: usize) -> Result<(), SyntaxError> {
        if anchor > 0 {
            let anchored = Anchored {
                nodes: node.count(),
                node: node.clone(),
                height,
            };
            self.anchors.insert(anchor, anchored);
        }
        let Some(frame) = self.stack.last_mut() else {
            self.root = Some(node);
            return Ok(());
        };
        frame.height = frame.height.max(height);
        match (&mut frame.node.value, frame.key.take()) {
            (Value::Seq(items), _) => items.push(node),
            (Value::Map(entries), Some(key)) => {
                // Nothing written after `key:`: point at the key, not at the next line.
                if node.is_implicit_null() {
                    node.mark = key.mark;
                }
                entries.push((key, node));
            }
            (Value::Map(entries), None) => {
                if let Some(text) = node.scalar() {
                    if !frame.keys.insert(text.to_string()) {
                        let message = format!("duplicate key `{text}`");
                        let mark = node.mark;
                        return Err(self.error(mark, message));
                    }
                }
                // A block mapping starts at its first key (yaml-rust2 marks a later column).
                if !frame.flow && entries.is_empty() {
                    frame.node.mark = node.mark;
                }
                frame.key = Some(node);
            }
            (Value::Scalar { .. }, _) => {}
        }
        Ok(())
    }
}
