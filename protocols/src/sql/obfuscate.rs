//! Literal removal (see [`super::obfuscate`] for the canonical form).
//!
//! One pass over the tokens with a stack of open parentheses (no recursion); the lookahead of
//! a literal list and the skipping of extra `VALUES` rows only move forward, so the work is
//! linear in the number of tokens.

use std::cell::RefCell;

use super::lex::{Dialect, Kind, Lexer, Token};
use super::memo::{cached, Memo};

/// What an open parenthesis holds, as far as obfuscation cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ctx {
    /// A row after `VALUES`/`VALUE` (or `VALUES ROW`): the rows after it are dropped.
    ValuesRow,
    /// The list after `IN` that is not only literals (so it was not collapsed).
    InList,
    Other,
}

/// Operators after which a `"..."` token is a MySQL string, not a PostgreSQL identifier.
const COMPARISONS: &[&str] = &["=", "==", "!=", "<>", "<", ">", "<=", ">=", "<=>", ":="];
/// Key words after which a `"..."` token is a MySQL string.
const PATTERN_WORDS: &[&str] = &["LIKE", "ILIKE", "RLIKE", "REGEXP"];

/// The last thing written, for spacing.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Last {
    Start,
    Open,
    Comma,
    Semi,
    Other,
}

/// The output with its spacing rules: no space after `(`/`[` nor before `,` `)` `]` `;`, one
/// space after `,` and `;`, elsewhere one space where the input had whitespace or a comment.
struct Out {
    s: String,
    last: Last,
}

impl Out {
    fn push(&mut self, text: &str, space: bool) {
        let tight = matches!(text, "," | ")" | "]" | ";");
        let sep = match self.last {
            Last::Start | Last::Open => false,
            Last::Comma | Last::Semi => !tight,
            Last::Other => space && !tight,
        };
        if sep {
            self.s.push(' ');
        }
        self.s.push_str(text);
        self.last = match text {
            "(" | "[" => Last::Open,
            "," => Last::Comma,
            ";" => Last::Semi,
            _ => Last::Other,
        };
    }
}

thread_local! {
    /// Texts without literals obfuscated before (see [`super::memo`]).
    static MEMO: RefCell<Memo<String>> = RefCell::new(Memo::new());
}

/// See [`super::obfuscate`].
pub(crate) fn obfuscate(query: &str, dialect: Dialect) -> String {
    cached(&MEMO, query, dialect, || strip(query, dialect))
}

/// The obfuscated text, and whether any literal was replaced.
fn strip(query: &str, dialect: Dialect) -> (String, bool) {
    let toks: Vec<Token> = Lexer::with_dialect(query, dialect).collect();
    // Also those in a collapsed list or a dropped VALUES row; `"..."` strings are added below.
    let mut literals = toks.iter().any(|t| matches!(t.kind, Kind::Num | Kind::Str));
    let mut out = Out {
        s: String::with_capacity(query.len().min(1 << 20)),
        last: Last::Start,
    };
    let mut stack: Vec<Ctx> = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let t = toks[i];
        let text = t.text(query);
        match t.kind {
            Kind::Num | Kind::Str => out.push("?", t.space),
            Kind::Word
                if (t.is_kw(query, "IN") || t.is_kw(query, "ARRAY"))
                    && kind(&toks, i + 1) == Some(Kind::Open) =>
            {
                out.push(text, t.space);
                if let Some(close) = literal_list(query, &toks, i + 1) {
                    let open = toks[i + 1];
                    out.push(open.text(query), open.space);
                    out.push("?", false);
                    out.push(toks[close].text(query), false);
                    i = close;
                }
            }
            Kind::Open => {
                stack.push(context(query, &toks, i));
                out.push(text, t.space);
            }
            Kind::Close => {
                out.push(text, t.space);
                if stack.pop() == Some(Ctx::ValuesRow) {
                    i = skip_rows(query, &toks, i);
                }
            }
            Kind::Quoted if string_in_quotes(query, &toks, i, stack.last().copied()) => {
                literals = true;
                out.push("?", t.space)
            }
            _ => out.push(text, t.space),
        }
        i += 1;
    }
    (out.s, literals)
}

fn kind(toks: &[Token], i: usize) -> Option<Kind> {
    toks.get(i).map(|t| t.kind)
}

fn kw(src: &str, toks: &[Token], i: usize, kws: &[&str]) -> bool {
    toks.get(i)
        .is_some_and(|t| kws.iter().any(|k| t.is_kw(src, k)))
}

/// What the parenthesis at `i` opens.
fn context(src: &str, toks: &[Token], i: usize) -> Ctx {
    const VALUES: &[&str] = &["VALUES", "VALUE"];
    if i >= 1 && kw(src, toks, i - 1, VALUES)
        || i >= 2 && kw(src, toks, i - 1, &["ROW"]) && kw(src, toks, i - 2, VALUES)
    {
        Ctx::ValuesRow
    } else if i >= 1 && kw(src, toks, i - 1, &["IN"]) {
        Ctx::InList
    } else {
        Ctx::Other
    }
}

/// A `"..."` token to treat as a (MySQL) string: right after a comparison or `LIKE`, or a
/// whole element of a `VALUES` row or `IN` list; never a part of a qualified name.
fn string_in_quotes(src: &str, toks: &[Token], i: usize, top: Option<Ctx>) -> bool {
    if !toks[i].text(src).starts_with('"')
        || kind(toks, i + 1) == Some(Kind::Dot)
        || i == 0
        || kind(toks, i - 1) == Some(Kind::Dot)
    {
        return false;
    }
    let prev = toks[i - 1];
    if prev.kind == Kind::Op && COMPARISONS.contains(&prev.text(src)) {
        return true;
    }
    if kw(src, toks, i - 1, PATTERN_WORDS) {
        return true;
    }
    matches!(top, Some(Ctx::ValuesRow | Ctx::InList))
        && matches!(prev.kind, Kind::Open | Kind::Comma)
        && matches!(kind(toks, i + 1), Some(Kind::Comma | Kind::Close))
}

/// A literal as a list element: a number, a string, `?`, or a `"..."` token.
fn literal(src: &str, t: &Token) -> bool {
    match t.kind {
        Kind::Num | Kind::Str => true,
        Kind::Param => t.text(src) == "?",
        Kind::Quoted => t.text(src).starts_with('"'),
        _ => false,
    }
}

/// `[+|-] literal` at `j`: the index after it.
fn signed_literal(src: &str, toks: &[Token], mut j: usize) -> Option<usize> {
    let t = toks.get(j)?;
    if t.kind == Kind::Op && matches!(t.text(src), "-" | "+") {
        j += 1;
    }
    literal(src, toks.get(j)?).then_some(j + 1)
}

/// When the group opened at `open` holds only literals (or tuples of literals, one level
/// deep) separated by commas: the index of its closing token.
fn literal_list(src: &str, toks: &[Token], open: usize) -> Option<usize> {
    let mut j = open + 1;
    loop {
        j = match signed_literal(src, toks, j) {
            Some(next) => next,
            None if kind(toks, j) == Some(Kind::Open) => {
                let mut k = j + 1;
                loop {
                    k = signed_literal(src, toks, k)?;
                    match kind(toks, k)? {
                        Kind::Comma => k += 1,
                        Kind::Close => break,
                        _ => return None,
                    }
                }
                k + 1
            }
            None => return None,
        };
        match kind(toks, j)? {
            Kind::Comma => j += 1,
            Kind::Close => return Some(j),
            _ => return None,
        }
    }
}

/// After the first `VALUES` row closed at `close`: the index of the last token of the rows
/// that follow it (`, (..)` or `, ROW(..)`), which are dropped.
fn skip_rows(src: &str, toks: &[Token], close: usize) -> usize {
    let mut i = close;
    while kind(toks, i + 1) == Some(Kind::Comma) {
        let mut open = i + 2;
        if kw(src, toks, open, &["ROW"]) {
            open += 1;
        }
        if kind(toks, open) != Some(Kind::Open) {
            break;
        }
        let mut depth = 0usize;
        i = toks.len();
        for (j, t) in toks.iter().enumerate().skip(open) {
            match t.kind {
                Kind::Open => depth += 1,
                Kind::Close => {
                    depth -= 1;
                    if depth == 0 {
                        i = j;
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A text obfuscated again is answered from the cache only when it has no literal
    /// (strings, numbers, MySQL `"..."` strings, lists of them), and the answer is the one a
    /// fresh pass gives.
    #[test]
    fn kept_texts_are_obfuscated_as_a_fresh_pass_would() {
        let cases = [
            (
                "SELECT abalance FROM pgbench_accounts WHERE aid = $1;",
                true,
            ),
            ("SELECT * FROM t WHERE id IN (?, ?, ?)", true),
            ("COMMIT", true),
            (
                "SELECT abalance FROM pgbench_accounts WHERE aid = 42;",
                false,
            ),
            ("SELECT * FROM t WHERE id IN (1, 2, 3)", false),
            ("SELECT * FROM t WHERE name = \"bob\"", false),
            ("INSERT INTO t VALUES (?, ?), (1, 'x')", false),
        ];
        for (q, kept) in cases {
            for d in [Dialect::Mysql, Dialect::Postgres] {
                let want = strip(q, d).0;
                assert_eq!(obfuscate(q, d), want, "{q}");
                assert_eq!(obfuscate(q, d), want, "{q}, again");
                let cached = MEMO.with(|m| m.borrow().get(q, d));
                assert_eq!(cached.is_some(), kept, "{q}");
            }
        }
    }
}
