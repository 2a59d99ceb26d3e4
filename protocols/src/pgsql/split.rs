//! Splitting the text of a simple Query into its statements, the way the server does
//! (PostgreSQL docs, section 55.2.2.1 "Multiple Statements in a Simple Query": the statements
//! are separated by semicolons and executed in order, each with its own CommandComplete).
//!
//! The lexer follows psql's (`src/fe_utils/psqlscan.l`), which must split exactly as the
//! server's grammar (`stmtmulti` in `gram.y`) does: a semicolon ends a statement unless it is
//! inside a string literal (`'...'` with `''`, `E'...'` with backslash escapes), a quoted
//! identifier (`"..."`), a comment (`-- ...`, nested `/* ... */`), a dollar-quoted string
//! (`$tag$ ... $tag$`), parentheses, or a `BEGIN ATOMIC ... END` function body (psql's
//! heuristic: `CREATE [OR REPLACE] FUNCTION|PROCEDURE` followed by `BEGIN` ... `END`, `CASE`
//! nesting). Text cut by the capture ends inside whatever it was in; that is fine.

use std::ops::Range;

/// The byte ranges of the statements in `text`, in order: each from its first non-blank byte
/// (comments before it included) to its terminating semicolon (included) or the end of the
/// text. Pieces holding only blanks and comments are not statements (the server skips them).
pub(crate) fn statements(text: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut lx = Lexer::new(text);
    let mut start: Option<usize> = None;
    let mut has_token = false;
    while let Some((tok, at, end)) = lx.next_token() {
        match tok {
            Tok::Blank => {}
            Tok::Comment => {
                start.get_or_insert(at);
            }
            Tok::Semi if lx.paren_depth == 0 && lx.begin_depth == 0 => {
                if has_token {
                    out.push(start.unwrap_or(at)..end);
                }
                start = None;
                has_token = false;
                lx.end_statement();
            }
            _ => {
                start.get_or_insert(at);
                has_token = true;
            }
        }
    }
    if has_token {
        if let Some(s) = start {
            out.push(s..trim_end(text, text.len()));
        }
    }
    out
}

fn trim_end(text: &[u8], mut end: usize) -> usize {
    while end > 0 && text[end - 1].is_ascii_whitespace() {
        end -= 1;
    }
    end
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok {
    Blank,
    Comment,
    Semi,
    Word,
    Other,
}

struct Lexer<'a> {
    b: &'a [u8],
    i: usize,
    paren_depth: u32,
    begin_depth: u32,
    /// First letters of the statement's first words, as psql keeps them (`c`reate, `o`r,
    /// `r`eplace, `f`unction, `p`rocedure; 0 for any other word).
    idents: [u8; 4],
    ident_count: usize,
}

fn ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn ident_cont(c: u8) -> bool {
    ident_start(c) || c.is_ascii_digit() || c == b'$'
}

impl<'a> Lexer<'a> {
    fn new(b: &'a [u8]) -> Lexer<'a> {
        Lexer {
            b,
            i: 0,
            paren_depth: 0,
            begin_depth: 0,
            idents: [0; 4],
            ident_count: 0,
        }
    }

    fn end_statement(&mut self) {
        self.paren_depth = 0;
        self.begin_depth = 0;
        self.idents = [0; 4];
        self.ident_count = 0;
    }

    fn at(&self, k: usize) -> Option<u8> {
        self.b.get(self.i + k).copied()
    }

    /// The next token, its start and end. Every call advances by at least one byte.
    fn next_token(&mut self) -> Option<(Tok, usize, usize)> {
        let start = self.i;
        let c = self.at(0)?;
        let tok = match c {
            c if c.is_ascii_whitespace() => {
                while self.at(0).is_some_and(|c| c.is_ascii_whitespace()) {
                    self.i += 1;
                }
                Tok::Blank
            }
            b'-' if self.at(1) == Some(b'-') => {
                while self.at(0).is_some_and(|c| c != b'\n') {
                    self.i += 1;
                }
                Tok::Comment
            }
            b'/' if self.at(1) == Some(b'*') => {
                self.block_comment();
                Tok::Comment
            }
            b';' => {
                self.i += 1;
                Tok::Semi
            }
            b'(' => {
                self.i += 1;
                self.paren_depth += 1;
                Tok::Other
            }
            b')' => {
                self.i += 1;
                self.paren_depth = self.paren_depth.saturating_sub(1);
                Tok::Other
            }
            b'\'' => {
                self.i += 1;
                self.quoted(b'\'', false);
                Tok::Other
            }
            b'"' => {
                self.i += 1;
                self.quoted(b'"', false);
                Tok::Other
            }
            b'$' => {
                self.dollar();
                Tok::Other
            }
            c if (c == b'E' || c == b'e') && self.at(1) == Some(b'\'') => {
                self.i += 2;
                self.quoted(b'\'', true);
                Tok::Other
            }
            c if ident_start(c) => {
                while self.at(0).is_some_and(ident_cont) {
                    self.i += 1;
                }
                // U&'...' and similar prefixed strings continue as a string literal.
                if self.at(0) == Some(b'\'') {
                    self.i += 1;
                    self.quoted(b'\'', false);
                    Tok::Other
                } else {
                    self.word(start);
                    Tok::Word
                }
            }
            c if c.is_ascii_digit() => {
                // A number; `1$` is not a dollar quote start.
                while self
                    .at(0)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'_')
                {
                    self.i += 1;
                }
                Tok::Other
            }
            _ => {
                self.i += 1;
                Tok::Other
            }
        };
        Some((tok, start, self.i))
    }

    fn block_comment(&mut self) {
        self.i += 2;
        let mut depth = 1u32;
        while let Some(c) = self.at(0) {
            if c == b'*' && self.at(1) == Some(b'/') {
                self.i += 2;
                depth -= 1;
                if depth == 0 {
                    return;
                }
            } else if c == b'/' && self.at(1) == Some(b'*') {
                self.i += 2;
                depth += 1;
            } else {
                self.i += 1;
            }
        }
    }

    /// Inside a quoted token after its opening quote: up to the closing quote (a doubled quote
    /// is an escaped one; with `backslash`, `\x` escapes any byte).
    fn quoted(&mut self, q: u8, backslash: bool) {
        while let Some(c) = self.at(0) {
            self.i += 1;
            if backslash && c == b'\\' {
                if self.at(0).is_some() {
                    self.i += 1;
                }
            } else if c == q {
                if self.at(0) == Some(q) {
                    self.i += 1;
                } else {
                    return;
                }
            }
        }
    }

    /// At a `$`: a dollar-quoted string (`$$`, `$tag$`), or a parameter / operator.
    fn dollar(&mut self) {
        let mut j = self.i + 1;
        if self.b.get(j).is_some_and(|&c| ident_start(c)) {
            while self
                .b
                .get(j)
                .is_some_and(|&c| ident_start(c) || c.is_ascii_digit())
            {
                j += 1;
            }
        }
        if self.b.get(j) != Some(&b'$') {
            // `$1` or a lone `$`.
            self.i += 1;
            while self.at(0).is_some_and(|c| c.is_ascii_digit()) {
                self.i += 1;
            }
            return;
        }
        let tag = &self.b[self.i..=j];
        self.i = j + 1;
        match find(&self.b[self.i..], tag) {
            Some(k) => self.i += k + tag.len(),
            None => self.i = self.b.len(),
        }
    }

    /// psql's `BEGIN ATOMIC` heuristic (psqlscan.l, `identifier` rule).
    fn word(&mut self, start: usize) {
        let w = &self.b[start..self.i];
        let is = |s: &str| w.eq_ignore_ascii_case(s.as_bytes());
        if self.ident_count == 0 {
            self.idents = [0; 4];
        }
        if (is("create") || is("function") || is("procedure") || is("or") || is("replace"))
            && self.ident_count < self.idents.len()
        {
            self.idents[self.ident_count] = w[0].to_ascii_lowercase();
        }
        self.ident_count += 1;
        let id = self.idents;
        let routine = id[0] == b'c'
            && (id[1] == b'f'
                || id[1] == b'p'
                || (id[1] == b'o' && id[2] == b'r' && (id[3] == b'f' || id[3] == b'p')));
        if routine && self.paren_depth == 0 {
            if is("begin") {
                self.begin_depth += 1;
            } else if is("case") {
                if self.begin_depth >= 1 {
                    self.begin_depth += 1;
                }
            } else if is("end") && self.begin_depth > 0 {
                self.begin_depth -= 1;
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> Vec<&str> {
        statements(s.as_bytes())
            .into_iter()
            .map(|r| &s[r])
            .collect()
    }

    #[test]
    fn plain_statements() {
        assert_eq!(split("SELECT 1"), ["SELECT 1"]);
        assert_eq!(split("SELECT 1;"), ["SELECT 1;"]);
        assert_eq!(
            split("  SELECT 1;  SELECT 2 ;\nSELECT 3\n"),
            ["SELECT 1;", "SELECT 2 ;", "SELECT 3"]
        );
        assert!(split("").is_empty());
        assert!(split(" ; ;; ").is_empty());
        assert!(split("-- only a comment\n").is_empty());
        assert_eq!(split("SELECT 1;;SELECT 2"), ["SELECT 1;", "SELECT 2"]);
    }

    #[test]
    fn quotes_comments_and_dollars() {
        assert_eq!(
            split("SELECT 'a;b''c;'; SELECT \"x;\"\"y\" FROM t"),
            ["SELECT 'a;b''c;';", "SELECT \"x;\"\"y\" FROM t"]
        );
        assert_eq!(
            split("SELECT E'\\';'; SELECT 2"),
            ["SELECT E'\\';';", "SELECT 2"]
        );
        assert_eq!(
            split("SELECT 1 -- x;y\n; /* a /* ; */ ; */ SELECT 2;"),
            ["SELECT 1 -- x;y\n;", "/* a /* ; */ ; */ SELECT 2;"]
        );
        assert_eq!(
            split("DO $$ BEGIN PERFORM 1; END $$; SELECT $1;"),
            ["DO $$ BEGIN PERFORM 1; END $$;", "SELECT $1;"]
        );
        assert_eq!(
            split("SELECT $f$;$x$;$f$; SELECT a$b$c FROM t; SELECT 2"),
            ["SELECT $f$;$x$;$f$;", "SELECT a$b$c FROM t;", "SELECT 2"]
        );
        assert_eq!(split("SELECT 1; -- trailing"), ["SELECT 1;"]);
    }

    #[test]
    fn begin_atomic_bodies() {
        let f = "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC \
                 SELECT CASE WHEN true THEN 1 END; SELECT 2; END;";
        assert_eq!(split(&format!("{f} SELECT 3;")), [f, "SELECT 3;"]);
        // Outside a routine definition BEGIN is a transaction start.
        assert_eq!(
            split("BEGIN; SELECT 1; END;"),
            ["BEGIN;", "SELECT 1;", "END;"]
        );
    }

    #[test]
    fn cut_text_never_panics() {
        for s in [
            "SELECT '",
            "SELECT $a$ x",
            "/* x",
            "E'\\",
            "$",
            "SELECT \"",
            "((",
        ] {
            let _ = split(s);
        }
    }
}
