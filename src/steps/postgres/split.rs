//! Splitting a plain SQL dump into statements, line by line, as pg_dump writes it: quotes
//! (`'…'`, `E'…'`, `"…"`), dollar quoting (`$$…$$`, `$tag$…$tag$`), comments, and
//! `COPY … FROM stdin;` followed by data lines up to `\.`. Holds at most one statement.

/// What one line of a dump yields.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece {
    /// A complete statement (with its `;`).
    Sql(String),
    /// A `COPY … FROM stdin` statement: data lines follow.
    CopyStart(String),
    /// One line of COPY data, newline included.
    CopyData(String),
    /// The `\.` line that ends COPY data.
    CopyEnd,
    /// A psql meta-command line (`\restrict …`), outside any statement.
    Meta(String),
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
enum State {
    #[default]
    Normal,
    /// In `'…'`; `true` for `E'…'`, where a backslash escapes the next character.
    Single(bool),
    Double,
    Dollar(String),
    Block(u32),
}

/// The splitter's state between lines.
#[derive(Debug, Default)]
pub struct Splitter {
    buf: String,
    state: State,
    in_copy: bool,
    header: bool,
    trailer: bool,
}

const HEADER: &str = "-- PostgreSQL database dump";
const TRAILER: &str = "-- PostgreSQL database dump complete";

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The dollar-quote tag starting at `s[0] == '$'` (`$$`, `$body$`), if there is one.
fn dollar_tag(s: &[char]) -> Option<String> {
    let mut i = 1;
    while i < s.len() && is_ident(s[i]) {
        if i == 1 && s[i].is_ascii_digit() {
            return None;
        }
        i += 1;
    }
    (i < s.len() && s[i] == '$').then(|| s[..=i].iter().collect())
}

fn is_copy_from_stdin(stmt: &str) -> bool {
    let up = stmt.to_ascii_uppercase();
    up.starts_with("COPY ") && up.contains("FROM STDIN")
}

impl Splitter {
    /// Feeds one line (with its newline); complete pieces are appended to `out`.
    pub fn push(&mut self, line: &str, out: &mut Vec<Piece>) {
        if self.in_copy {
            if line.trim_end_matches(['\n', '\r']) == "\\." {
                self.in_copy = false;
                out.push(Piece::CopyEnd);
            } else {
                out.push(Piece::CopyData(line.to_string()));
            }
            return;
        }
        if self.state == State::Normal && self.buf.trim().is_empty() {
            let t = line.trim_end();
            self.header |= t == HEADER;
            self.trailer |= t == TRAILER;
            if t.starts_with('\\') {
                out.push(Piece::Meta(t.to_string()));
                return;
            }
        }
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            i += self.step(&chars, i, out);
            if self.in_copy {
                return;
            }
        }
    }

    /// Handles the character at `i`; returns how many characters it consumed.
    fn step(&mut self, chars: &[char], i: usize, out: &mut Vec<Piece>) -> usize {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match &mut self.state {
            State::Normal => return self.normal(chars, i, out),
            State::Single(escape) => {
                self.buf.push(c);
                if *escape && c == '\\' {
                    if let Some(n) = next {
                        self.buf.push(n);
                        return 2;
                    }
                } else if c == '\'' {
                    if next == Some('\'') {
                        self.buf.push('\'');
                        return 2;
                    }
                    self.state = State::Normal;
                }
            }
            State::Double => {
                self.buf.push(c);
                if c == '"' {
                    self.state = State::Normal;
                }
            }
            State::Dollar(tag) => {
                let n = tag.chars().count();
                if chars[i..].starts_with(&tag.chars().collect::<Vec<_>>()) {
                    self.buf.push_str(&tag.clone());
                    self.state = State::Normal;
                    return n;
                }
                self.buf.push(c);
            }
            State::Block(depth) => {
                if c == '*' && next == Some('/') {
                    *depth -= 1;
                    if *depth == 0 {
                        self.state = State::Normal;
                    }
                    return 2;
                }
                if c == '/' && next == Some('*') {
                    *depth += 1;
                    return 2;
                }
            }
        }
        1
    }

    fn normal(&mut self, chars: &[char], i: usize, out: &mut Vec<Piece>) -> usize {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let prev = i.checked_sub(1).map(|p| chars[p]);
        match c {
            '-' if next == Some('-') => {
                self.buf.push('\n');
                return chars.len() - i;
            }
            '/' if next == Some('*') => {
                self.state = State::Block(1);
                return 2;
            }
            '\'' => {
                let e = matches!(prev, Some('E' | 'e')) && !(i >= 2 && is_ident(chars[i - 2]));
                self.state = State::Single(e);
            }
            '"' => self.state = State::Double,
            '$' if !prev.is_some_and(is_ident) => {
                if let Some(tag) = dollar_tag(&chars[i..]) {
                    let n = tag.chars().count();
                    self.buf.push_str(&tag);
                    self.state = State::Dollar(tag);
                    return n;
                }
            }
            ';' => {
                self.buf.push(';');
                let stmt = std::mem::take(&mut self.buf).trim().to_string();
                if stmt != ";" {
                    if is_copy_from_stdin(&stmt) {
                        self.in_copy = true;
                        out.push(Piece::CopyStart(stmt));
                    } else {
                        out.push(Piece::Sql(stmt));
                    }
                }
                return 1;
            }
            _ => {}
        }
        self.buf.push(c);
        1
    }

    /// At the end of the dump: an unfinished statement or COPY, or pg_dump output without
    /// its closing line, means the dump is cut.
    pub fn finish(&self) -> Result<(), String> {
        if self.in_copy {
            return Err("the dump ends inside COPY data (no `\\.` line)".into());
        }
        if self.state != State::Normal || !self.buf.trim().is_empty() {
            return Err("the dump ends inside a statement".into());
        }
        if self.header && !self.trailer {
            return Err(format!(
                "pg_dump output without its closing `{TRAILER}` line: the dump is cut"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> (Vec<Piece>, Result<(), String>) {
        let mut s = Splitter::default();
        let mut out = Vec::new();
        for line in text.split_inclusive('\n') {
            s.push(line, &mut out);
        }
        let end = s.finish();
        (out, end)
    }

    #[test]
    fn statements_respect_quotes_comments_and_dollar_quoting() {
        let (out, end) = split(
            "SET a = 'x;y'; SET b = \"we;ird\";\n-- a comment; not split\n\
             CREATE FUNCTION f() RETURNS int AS $body$ select 1; $body$ LANGUAGE sql;\n\
             SELECT E'it\\'s;', 'do''n;t', $$a;b$$ /* c; /* nested; */ */;\n;\n",
        );
        assert_eq!(end, Ok(()));
        let sql: Vec<_> = out
            .iter()
            .map(|p| match p {
                Piece::Sql(s) => s.as_str(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(sql.len(), 4, "{sql:?}");
        assert_eq!(sql[0], "SET a = 'x;y';");
        assert_eq!(sql[1], "SET b = \"we;ird\";");
        assert!(sql[2].starts_with("CREATE FUNCTION") && sql[2].ends_with("LANGUAGE sql;"));
        assert!(
            sql[3].contains("$$a;b$$") && sql[3].contains("'do''n;t'"),
            "{}",
            sql[3]
        );
    }

    #[test]
    fn copy_data_runs_to_the_end_marker() {
        let (out, end) = split(
            "\\restrict abc\nCOPY public.t (a, b) FROM stdin;\n1\tx;y\n2\t'\n\\.\nSELECT 1;\n",
        );
        assert_eq!(end, Ok(()));
        assert_eq!(
            out,
            vec![
                Piece::Meta("\\restrict abc".into()),
                Piece::CopyStart("COPY public.t (a, b) FROM stdin;".into()),
                Piece::CopyData("1\tx;y\n".into()),
                Piece::CopyData("2\t'\n".into()),
                Piece::CopyEnd,
                Piece::Sql("SELECT 1;".into()),
            ]
        );
    }

    #[test]
    fn cut_dumps_are_told() {
        assert!(split("COPY t FROM stdin;\n1\n")
            .1
            .unwrap_err()
            .contains("COPY"));
        assert!(split("SELECT 'abc;\n")
            .1
            .unwrap_err()
            .contains("inside a statement"));
        assert!(split("CREATE TABLE t (a int\n").1.is_err());
        let cut = format!("{HEADER}\nSELECT 1;\n");
        assert!(split(&cut).1.unwrap_err().contains("closing"));
        assert_eq!(split(&format!("{cut}{TRAILER}\n")).1, Ok(()));
    }
}
