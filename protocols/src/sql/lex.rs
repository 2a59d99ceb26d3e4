//! A small SQL lexer that understands both the MySQL and the PostgreSQL spelling of tokens.
//!
//! It follows the lexical structure of the two dialects where they agree and picks the safer
//! reading where they do not (safer = a literal is never taken for code):
//!
//! - PostgreSQL 15 manual, 4.1 "Lexical Structure": identifiers and key words (4.1.1), string
//!   constants, `E'..'` escapes, `U&'..'`, dollar quoting, bit strings, numbers (4.1.2),
//!   operators (4.1.3: a multi-character operator does not end in `+`/`-` unless it holds one of
//!   ``~ ! @ # % ^ & | ` ?``), positional parameters `$n` (4.1.4), nested `/* */` comments (4.1.5).
//! - MySQL 8.0 manual, 11.1 "Literal Values" (strings with `''` and backslash escapes, `N'..'`,
//!   `_charset'..'`, `X'..'`/`0x..`, `B'..'`/`0b..`), 11.2 "Schema Object Names" (backticks,
//!   identifiers that may begin with a digit, `db.1tbl`), 11.4 "User-Defined Variables"
//!   (`@var`, `@@sys`), 11.7 "Comments" (`#`, `-- `, `/* */`, executable `/*! */`, and
//!   MariaDB's `/*M! */`).
//!
//! Where they differ: backslash is an escape character in every quoted string under
//! [`Dialect::Mysql`] (MySQL's default) and only in `E'..'` under [`Dialect::Postgres`]
//! (PostgreSQL with `standard_conforming_strings`, the default since 9.1), `"..."` is lexed as a quoted identifier (PostgreSQL; MySQL's
//! default reads it as a string, see `obfuscate` for how that is handled), block comments nest
//! (PostgreSQL), `#` starts a comment unless followed by `>` (PostgreSQL's `#>`/`#>>`), and
//! `--` starts a comment even without a following space (PostgreSQL; in MySQL `5--1` is
//! `5 - -1`, which then loses its tail: text is dropped, never leaked).
//!
//! Token boundaries only ever fall on ASCII bytes (bytes >= 0x80 belong to words, strings or
//! comments), so every token is a valid `&str` slice of the input. Every branch consumes at
//! least one byte, so the lexer always terminates, in time linear in the input (dollar-quote
//! closing tags are searched once per opening).

/// Whose spelling of string literals to read: where a backslash escapes the next character.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Dialect {
    /// MySQL and MariaDB (default `sql_mode`): a backslash escapes in every quoted string
    /// (MySQL 8.0 manual 11.1.1 "String Literals", table 11.1). Also the reading used when
    /// the dialect is not known.
    #[default]
    Mysql,
    /// PostgreSQL with `standard_conforming_strings` on (the default since 9.1): a backslash
    /// is an ordinary character except in `E'..'` strings (PostgreSQL 15 manual 4.1.2.1 and
    /// 4.1.2.2).
    Postgres,
}

/// What a token is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Unquoted identifier or key word; also MySQL variables (`@v`, `@@session`) and MySQL
    /// identifiers that begin with a digit (`1abc`).
    Word,
    /// A closed quoted identifier: `"name"` or `` `name` `` (quotes included).
    Quoted,
    /// A string literal: `'..'`, with an optional `E`/`N`/`X`/`B`/`U&`/`_charset` prefix, a
    /// dollar-quoted string, or any quote left open (the rest of the input).
    Str,
    /// A numeric literal: `12`, `1.5`, `.5`, `1e-3`, `1_000`, `0x1F`, `0b101`.
    Num,
    /// A parameter placeholder: `?`, `$1`, `:name`.
    Param,
    /// `(` or `[`.
    Open,
    /// `)` or `]`.
    Close,
    /// `,`.
    Comma,
    /// `;`.
    Semi,
    /// `.` between name parts.
    Dot,
    /// A run of operator characters (`=`, `<>`, `::`, `->>`, `||`, ...).
    Op,
    /// Any other single character (`{`, `}`, `\`, a lone `$`).
    Other,
}

/// One token: its kind, its byte range in the input, and whether whitespace or a comment came
/// between it and the previous token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Token {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
    pub space: bool,
}

impl Token {
    /// The token's text (always a valid slice: boundaries fall on ASCII bytes).
    pub fn text<'a>(&self, src: &'a str) -> &'a str {
        src.get(self.start..self.end).unwrap_or("")
    }

    /// An unquoted word equal to `kw` (ASCII case-insensitive).
    pub fn is_kw(&self, src: &str, kw: &str) -> bool {
        self.kind == Kind::Word && self.text(src).eq_ignore_ascii_case(kw)
    }
}

/// Characters that continue an unquoted identifier.
fn ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// Characters that start an unquoted identifier.
fn ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

/// Operator characters (PostgreSQL 4.1.3, plus MySQL's `->`/`->>` which they already cover).
fn op_char(c: u8) -> bool {
    matches!(
        c,
        b'+' | b'-'
            | b'*'
            | b'/'
            | b'<'
            | b'>'
            | b'='
            | b'~'
            | b'!'
            | b'@'
            | b'#'
            | b'%'
            | b'^'
            | b'&'
            | b'|'
    )
}

/// Iterator over the tokens of a statement text. Comments and whitespace are skipped (they only
/// set `space` on the next token); the content of MySQL executable comments is lexed as code.
pub(crate) struct Lexer<'a> {
    src: &'a str,
    dialect: Dialect,
    b: &'a [u8],
    pos: usize,
    /// Inside `/*! ... */`: the next `*/` closes it.
    exec: bool,
    prev: Option<Kind>,
    prev_end: usize,
    /// The previous token is a `.` that directly follows a name: a digit starts a name part.
    qualifier: bool,
}

impl<'a> Lexer<'a> {
    #[cfg(test)]
    pub fn new(src: &'a str) -> Self {
        Lexer::with_dialect(src, Dialect::Mysql)
    }

    pub fn with_dialect(src: &'a str, dialect: Dialect) -> Self {
        Lexer {
            src,
            dialect,
            b: src.as_bytes(),
            pos: 0,
            exec: false,
            prev: None,
            prev_end: 0,
            qualifier: false,
        }
    }

    fn at(&self, i: usize) -> u8 {
        self.b.get(i).copied().unwrap_or(0)
    }

    /// A comment (or the end of an executable comment) starts at `i`.
    fn comment_at(&self, i: usize) -> bool {
        match (self.at(i), self.at(i + 1)) {
            (b'-', b'-') | (b'/', b'*') => true,
            (b'#', c) => c != b'>',
            (b'*', b'/') => self.exec,
            _ => false,
        }
    }

    /// Skips whitespace and comments; returns whether anything was skipped.
    fn skip_trivia(&mut self) -> bool {
        let start = self.pos;
        let len = self.b.len();
        while self.pos < len {
            let c = self.b[self.pos];
            if c <= b' ' || c == 0x7f {
                self.pos += 1;
            } else if !self.comment_at(self.pos) {
                break;
            } else if c == b'-' || c == b'#' {
                while self.pos < len && self.b[self.pos] != b'\n' && self.b[self.pos] != b'\r' {
                    self.pos += 1;
                }
            } else if c == b'*' {
                // `*/` closing an executable comment.
                self.pos += 2;
                self.exec = false;
            } else if self.at(self.pos + 2) == b'!'
                || (self.at(self.pos + 2) == b'M' && self.at(self.pos + 3) == b'!')
            {
                // `/*!NNNNN code */` and MariaDB's `/*M!NNNNNN code */`: keep the code.
                self.pos += if self.at(self.pos + 2) == b'!' { 3 } else { 4 };
                while self.pos < len && self.b[self.pos].is_ascii_digit() {
                    self.pos += 1;
                }
                self.exec = true;
            } else {
                self.skip_block_comment();
            }
        }
        self.pos > start
    }

    /// A `/* */` comment, nested ones included; an unclosed one runs to the end.
    fn skip_block_comment(&mut self) {
        let len = self.b.len();
        let mut depth = 0usize;
        while self.pos < len {
            match (self.b[self.pos], self.at(self.pos + 1)) {
                (b'/', b'*') => {
                    depth += 1;
                    self.pos += 2;
                }
                (b'*', b'/') => {
                    depth -= 1;
                    self.pos += 2;
                    if depth == 0 {
                        return;
                    }
                }
                _ => self.pos += 1,
            }
        }
    }

    /// End of a quoted run that starts after its opening quote; `None` when left open.
    fn quoted_end(&self, from: usize, quote: u8, backslash: bool) -> Option<usize> {
        let len = self.b.len();
        let mut i = from;
        while i < len {
            let c = self.b[i];
            if backslash && c == b'\\' {
                i += 2;
            } else if c == quote {
                if self.at(i + 1) == quote {
                    i += 2;
                } else {
                    return Some(i + 1);
                }
            } else {
                i += 1;
            }
        }
        None
    }

    /// A string literal whose opening `'` is at `quote`; `escapes` when it is an `E'..'`.
    fn string(&mut self, quote: usize, escapes: bool) -> Kind {
        let backslash = escapes || self.dialect == Dialect::Mysql;
        self.pos = self
            .quoted_end(quote + 1, b'\'', backslash)
            .unwrap_or(self.b.len());
        Kind::Str
    }

    /// A quoted identifier; left open, it is a literal running to the end.
    fn quoted(&mut self, quote: u8) -> Kind {
        let backslash = quote == b'"' && self.dialect == Dialect::Mysql;
        match self.quoted_end(self.pos + 1, quote, backslash) {
            Some(end) => {
                self.pos = end;
                Kind::Quoted
            }
            None => {
                self.pos = self.b.len();
                Kind::Str
            }
        }
    }

    fn idents(&mut self) {
        while self.pos < self.b.len() && ident_char(self.b[self.pos]) {
            self.pos += 1;
        }
    }

    fn digits(&mut self, radix_ok: fn(u8) -> bool) -> usize {
        let start = self.pos;
        while self.pos < self.b.len() {
            let c = self.b[self.pos];
            // `1_000_000` (PostgreSQL 16): an underscore between digits.
            if radix_ok(c) || (c == b'_' && self.pos > start && radix_ok(self.at(self.pos + 1))) {
                self.pos += 1;
            } else {
                break;
            }
        }
        self.pos - start
    }

    /// A number starting at `pos` (a digit, or `.` before a digit); a digit run that goes on
    /// with identifier characters is a MySQL identifier (`1abc`, `0xZZ`).
    fn number(&mut self) -> Kind {
        let start = self.pos;
        let (c0, c1) = (self.at(start), self.at(start + 1));
        if c0 == b'0' && matches!(c1, b'x' | b'X' | b'b' | b'B') {
            self.pos += 2;
            let n = if c1 == b'x' || c1 == b'X' {
                self.digits(|c| c.is_ascii_hexdigit())
            } else {
                self.digits(|c| c == b'0' || c == b'1')
            };
            if n > 0 && !ident_char(self.at(self.pos)) {
                return Kind::Num;
            }
            self.idents();
            return Kind::Word;
        }
        self.digits(|c| c.is_ascii_digit());
        let mut plain = true;
        if self.at(self.pos) == b'.' {
            plain = false;
            self.pos += 1;
            self.digits(|c| c.is_ascii_digit());
        }
        let e = self.at(self.pos);
        if e == b'e' || e == b'E' {
            let sign = usize::from(matches!(self.at(self.pos + 1), b'+' | b'-'));
            if self.at(self.pos + 1 + sign).is_ascii_digit() {
                plain = false;
                self.pos += 1 + sign;
                self.digits(|c| c.is_ascii_digit());
            }
        }
        if plain && ident_char(self.at(self.pos)) {
            self.idents();
            return Kind::Word;
        }
        Kind::Num
    }

    /// A word; glued to a following quote it may be a string prefix (`E'..'`, `N'..'`,
    /// `X'..'`, `B'..'`, `_utf8mb4'..'`, `U&'..'`, `U&".."`).
    fn word(&mut self) -> Kind {
        let start = self.pos;
        self.idents();
        let w = &self.b[start..self.pos];
        let next = self.at(self.pos);
        if next == b'\''
            && (matches!(w, b"e" | b"E" | b"n" | b"N" | b"x" | b"X" | b"b" | b"B") || w[0] == b'_')
        {
            return self.string(self.pos, matches!(w, b"e" | b"E"));
        }
        if matches!(w, b"u" | b"U") && next == b'&' {
            match self.at(self.pos + 1) {
                b'\'' => return self.string(self.pos + 1, false),
                b'"' => {
                    self.pos += 1;
                    return self.quoted(b'"');
                }
                _ => {}
            }
        }
        Kind::Word
    }

    /// `$1`, `$tag$ ... $tag$`, or a lone `$`.
    fn dollar(&mut self) -> Kind {
        let start = self.pos;
        if self.at(start + 1).is_ascii_digit() {
            self.pos += 1;
            self.digits(|c| c.is_ascii_digit());
            return Kind::Param;
        }
        let mut j = start + 1;
        if ident_start(self.at(j)) {
            while j < self.b.len() && ident_char(self.b[j]) && self.b[j] != b'$' {
                j += 1;
            }
        }
        if self.at(j) != b'$' {
            self.pos += 1;
            return Kind::Other;
        }
        let tag = &self.src[start..=j];
        self.pos = match self.src[j + 1..].find(tag) {
            Some(k) => j + 1 + k + tag.len(),
            None => self.b.len(),
        };
        Kind::Str
    }

    /// A run of operator characters, stopping before a comment; trailing `+`/`-` split off
    /// unless the run holds one of `~!@#%^&|` (PostgreSQL 4.1.3), so `=-1` is `=`, `-`, `1`.
    fn operator(&mut self) -> Kind {
        let start = self.pos;
        self.pos += 1;
        while self.pos < self.b.len() && op_char(self.b[self.pos]) && !self.comment_at(self.pos) {
            self.pos += 1;
        }
        let run = &self.b[start..self.pos];
        if run.len() > 1 && !run.iter().any(|c| b"~!@#%^&|".contains(c)) {
            while self.pos - start > 1 && matches!(self.b[self.pos - 1], b'+' | b'-') {
                self.pos -= 1;
            }
        }
        Kind::Op
    }

    fn token(&mut self, c: u8) -> Kind {
        let adjacent = self.prev_end == self.pos;
        match c {
            b'\'' => self.string(self.pos, false),
            b'"' | b'`' => self.quoted(c),
            b'(' | b'[' => {
                self.pos += 1;
                Kind::Open
            }
            b')' | b']' => {
                self.pos += 1;
                Kind::Close
            }
            b',' => {
                self.pos += 1;
                Kind::Comma
            }
            b';' => {
                self.pos += 1;
                Kind::Semi
            }
            b'?' => {
                self.pos += 1;
                Kind::Param
            }
            b'.' => {
                let after_name = adjacent && matches!(self.prev, Some(Kind::Word | Kind::Quoted));
                if !after_name && self.at(self.pos + 1).is_ascii_digit() {
                    self.number()
                } else {
                    self.pos += 1;
                    Kind::Dot
                }
            }
            b'0'..=b'9' if self.qualifier && adjacent => {
                // `db.1tbl`: a name part.
                self.idents();
                Kind::Word
            }
            b'0'..=b'9' => self.number(),
            b'$' => self.dollar(),
            b':' => match self.at(self.pos + 1) {
                b':' | b'=' => {
                    self.pos += 2;
                    Kind::Op
                }
                n if ident_start(n) => {
                    self.pos += 1;
                    self.idents();
                    Kind::Param
                }
                _ => {
                    self.pos += 1;
                    Kind::Op
                }
            },
            b'@' if ident_start(self.at(self.pos + 1))
                || (self.at(self.pos + 1) == b'@' && ident_start(self.at(self.pos + 2))) =>
            {
                self.pos += if self.at(self.pos + 1) == b'@' { 2 } else { 1 };
                self.idents();
                Kind::Word
            }
            c if ident_start(c) => self.word(),
            c if op_char(c) => self.operator(),
            _ => {
                self.pos += 1;
                Kind::Other
            }
        }
    }
}

impl Iterator for Lexer<'_> {
    type Item = Token;

    fn next(&mut self) -> Option<Token> {
        let space = self.skip_trivia();
        if self.pos >= self.b.len() {
            return None;
        }
        let start = self.pos;
        let c = self.b[start];
        let kind = self.token(c);
        debug_assert!(self.pos > start, "the lexer must consume");
        let adjacent = self.prev_end == start && !space;
        self.qualifier =
            kind == Kind::Dot && adjacent && matches!(self.prev, Some(Kind::Word | Kind::Quoted));
        self.prev = Some(kind);
        self.prev_end = self.pos;
        Some(Token {
            kind,
            start,
            end: self.pos,
            space,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<(Kind, &str)> {
        Lexer::new(s).map(|t| (t.kind, t.text(s))).collect()
    }

    #[test]
    fn splits_tokens() {
        use Kind::*;
        assert_eq!(
            kinds("SELECT a.b, 'x''y' FROM t1 WHERE c=-1.5e3 AND d::int <> $1"),
            vec![
                (Word, "SELECT"),
                (Word, "a"),
                (Dot, "."),
                (Word, "b"),
                (Comma, ","),
                (Str, "'x''y'"),
                (Word, "FROM"),
                (Word, "t1"),
                (Word, "WHERE"),
                (Word, "c"),
                (Op, "="),
                (Op, "-"),
                (Num, "1.5e3"),
                (Word, "AND"),
                (Word, "d"),
                (Op, "::"),
                (Word, "int"),
                (Op, "<>"),
                (Param, "$1"),
            ]
        );
    }

    #[test]
    fn literals_and_names() {
        use Kind::*;
        assert_eq!(
            kinds("x'1F' 0x1F 0b01 B'01' E'a\\'b' $q$ it's $q$ 1abc db.1t .5 :v @x @@y.z U&\"d\""),
            vec![
                (Str, "x'1F'"),
                (Num, "0x1F"),
                (Num, "0b01"),
                (Str, "B'01'"),
                (Str, "E'a\\'b'"),
                (Str, "$q$ it's $q$"),
                (Word, "1abc"),
                (Word, "db"),
                (Dot, "."),
                (Word, "1t"),
                (Num, ".5"),
                (Param, ":v"),
                (Word, "@x"),
                (Word, "@@y"),
                (Dot, "."),
                (Word, "z"),
                (Quoted, "U&\"d\""),
            ]
        );
    }

    #[test]
    fn comments() {
        use Kind::*;
        assert_eq!(
            kinds("/* a /* b */ c */ x -- y\n#z\n/*!40101 SET */ a#>b"),
            vec![
                (Word, "x"),
                (Word, "SET"),
                (Word, "a"),
                (Op, "#>"),
                (Word, "b")
            ]
        );
        assert_eq!(kinds("'open"), vec![(Str, "'open")]);
        assert_eq!(kinds("\"open"), vec![(Str, "\"open")]);
        assert_eq!(kinds("a /* open"), vec![(Word, "a")]);
    }
}
