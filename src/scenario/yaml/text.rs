//! Where a yaml-rust2 marker is in the text: its byte offset, and the line and column (1-based,
//! in characters, lines split at `\n` as the diagnostics show them) in constant time.

use yaml_rust2::scanner::Marker;

/// Characters between two saved byte offsets of a text that is not ASCII.
const STRIDE: usize = 64;

/// A place in the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mark {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// Byte offset in the text.
    pub index: usize,
}

/// Line starts and character offsets of one text.
pub(super) struct TextMap<'a> {
    src: &'a str,
    /// Byte offset of each line start.
    line_bytes: Vec<usize>,
    /// Character offset of each line start (empty when the text is ASCII: the same offsets).
    line_chars: Vec<usize>,
    /// Byte offset of every `STRIDE`th character (empty when the text is ASCII).
    checkpoints: Vec<usize>,
    chars: usize,
    /// Characters before the text yaml-rust2 reads (a byte order mark it would keep).
    skipped: usize,
}

impl<'a> TextMap<'a> {
    /// The map of `src`, of which yaml-rust2 reads all but the first `skipped` characters.
    pub(super) fn new(src: &'a str, skipped: usize) -> Self {
        let mut line_bytes = vec![0];
        line_bytes.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        let (mut line_chars, mut checkpoints, mut chars) = (Vec::new(), Vec::new(), src.len());
        if !src.is_ascii() {
            line_chars.push(0);
            chars = 0;
            for (byte, c) in src.char_indices() {
                if chars % STRIDE == 0 {
                    checkpoints.push(byte);
                }
                chars += 1;
                if c == '\n' {
                    line_chars.push(chars);
                }
            }
        }
        TextMap {
            src,
            line_bytes,
            line_chars,
            checkpoints,
            chars,
            skipped,
        }
    }

    pub(super) fn src(&self) -> &'a str {
        self.src
    }

    /// True when the marker is at (or past) the end of the text.
    pub(super) fn at_end(&self, m: &Marker) -> bool {
        m.index() + self.skipped >= self.chars
    }

    /// Byte offset of the character at character offset `ci`.
    fn byte_of(&self, ci: usize) -> usize {
        if self.checkpoints.is_empty() {
            return ci.min(self.src.len());
        }
        let Some(&start) = self.checkpoints.get(ci / STRIDE) else {
            return self.src.len();
        };
        self.src[start..]
            .char_indices()
            .nth(ci % STRIDE)
            .map_or(self.src.len(), |(b, _)| start + b)
    }

    /// Number of lines, as `str::lines` counts them.
    fn line_count(&self) -> usize {
        let n = self.line_bytes.len();
        if self.src.is_empty() || self.src.ends_with('\n') {
            n - 1
        } else {
            n
        }
    }

    /// The place of a marker; past the last line it is the end of the last line.
    pub(super) fn mark(&self, m: &Marker) -> Mark {
        let ci = (m.index() + self.skipped).min(self.chars);
        let index = self.byte_of(ci);
        let line = self.line_bytes.partition_point(|&s| s <= index);
        if line > self.line_count() {
            return self.end_of_last_line();
        }
        let line_start = match self.line_chars.get(line - 1) {
            Some(&c) => c,
            None => self.line_bytes[line - 1],
        };
        Mark {
            line,
            column: ci - line_start + 1,
            index,
        }
    }

    /// Just after the last character of the last line (line 1, column 1 in an empty text).
    pub(super) fn end_of_last_line(&self) -> Mark {
        let line = self.line_count().max(1);
        let start = self.line_bytes[line - 1];
        let text = self.src[start..].split('\n').next().unwrap_or_default();
        let text = text.strip_suffix('\r').unwrap_or(text);
        Mark {
            line,
            column: text.chars().count() + 1,
            index: start + text.len(),
        }
    }
}
