//! Scenario YAML, read once: [`parse`] turns the text into a tree of nodes that know their
//! line and column (one yaml-rust2 pass), and [`from_node`] deserializes that tree with serde,
//! reporting every error of the document with its path and place, not only the first.

mod access;
mod de;
mod error;
mod path;
mod scalar;
mod text;
mod tree;

#[cfg(test)]
mod tests;

use serde::de::DeserializeOwned;

pub use error::{SyntaxError, UnknownField, YamlError};
pub use text::Mark;
pub use tree::{parse, Node, Style, Value, MAX_DEPTH};

use error::Sink;
use path::Path;

/// Deserializes a whole document. Every error is returned (in the order written), also when
/// the value could be built around them.
pub fn from_node<T: DeserializeOwned>(node: &Node) -> Result<T, Vec<YamlError>> {
    from_node_at(node, "")
}

/// Deserializes a sub-node whose path in the document is `path` (errors name it).
pub fn from_node_at<T: DeserializeOwned>(node: &Node, path: &str) -> Result<T, Vec<YamlError>> {
    let sink = Sink::default();
    let root = Path::Root(path);
    match access::read::<T>(node, &root, &sink) {
        Ok(v) if sink.is_empty() => Ok(v),
        _ => {
            let mut errors = sink.into_errors();
            if errors.is_empty() {
                // Not expected: a failure is always recorded before it is passed on as such.
                errors.push(YamlError {
                    path: path.to_string(),
                    line: node.mark.line,
                    column: node.mark.column,
                    message: "the document could not be read".into(),
                    unknown_field: None,
                });
            }
            Err(errors)
        }
    }
}

/// Parses and deserializes a text (a syntax error is the only error then).
pub fn from_str<T: DeserializeOwned>(src: &str) -> Result<T, Vec<YamlError>> {
    let node = parse(src).map_err(|e| vec![YamlError::from(e)])?;
    from_node(&node)
}
