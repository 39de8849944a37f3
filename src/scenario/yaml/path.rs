//! The path of the node being deserialized, kept as borrowed links on the stack and written
//! out (`steps[1].http.url`, the syntax of the location index) only for an error.

use std::fmt;

#[derive(Debug, Clone, Copy)]
pub(super) enum Path<'a> {
    /// The top, or the path of the sub-node being deserialized alone.
    Root(&'a str),
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root(prefix) => f.write_str(prefix),
            Path::Key(parent, key) => {
                let parent = parent.to_string();
                if parent.is_empty() {
                    f.write_str(key)
                } else {
                    write!(f, "{parent}.{key}")
                }
            }
            Path::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}
