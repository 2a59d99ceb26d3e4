//! The operation and first table of a statement (see [`super::describe`]).
//!
//! Works on the tokens of the first statement only, without recursion on the input's nesting:
//! parentheses are tracked with counters and a stack, and the only nested calls (CTE bodies,
//! `EXPLAIN`'s statement) are bounded by [`BUDGET`].
//!
//! Grammar followed, loosely: PostgreSQL 15 manual, SQL Commands (`SELECT` with `WITH`,
//! `INSERT`, `UPDATE`, `DELETE`, `MERGE`, `COPY`, `CREATE/ALTER/DROP TABLE`, `TRUNCATE`,
//! `CREATE INDEX`, `LOCK`, `EXPLAIN`, `TABLE`); MySQL 8.0 manual, 15.2 "Data Manipulation
//! Statements" (modifiers such as `LOW_PRIORITY`, `IGNORE`, `INSERT ... SET`, multi-table
//! `DELETE`/`UPDATE`, `REPLACE`), 15.8.1 `DESCRIBE`/`EXPLAIN`.

use std::cell::RefCell;

use super::lex::{Dialect, Kind, Lexer, Token};
use super::memo::{cached, Memo};

/// Tokens kept for one statement: enough for any realistic statement head, and a bound on
/// the memory a huge captured text can take.
const MAX_TOKENS: usize = 1 << 16;

/// How many nested descriptions (CTE bodies, `EXPLAIN`'s statement) one call may make in
/// all, so the work stays within a few passes over the tokens.
const BUDGET: u8 = 4;

/// Longest operation keyword reported (the longest SQL command word is well below this).
const MAX_OP: usize = 32;

/// Words that can never be a table name where one is expected (the statement is cut short or
/// not what it seemed).
const NOT_A_NAME: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "SET",
    "VALUES",
    "VALUE",
    "INTO",
    "JOIN",
    "ON",
    "USING",
    "AS",
    "WITH",
    "AND",
    "OR",
    "NOT",
    "GROUP",
    "ORDER",
    "LIMIT",
    "OFFSET",
    "HAVING",
    "UNION",
    "INNER",
    "LEFT",
    "RIGHT",
    "FULL",
    "OUTER",
    "CROSS",
    "NATURAL",
    "LATERAL",
    "ONLY",
    "TABLE",
    "RETURNING",
    "WINDOW",
    "FOR",
    "DEFAULT",
    "NULL",
    "DUAL",
    "IF",
    "EXISTS",
];

/// Statements whose text names a table, used to tell `EXPLAIN SELECT ...` from MySQL's
/// `EXPLAIN tbl`.
const STATEMENTS: &[&str] = &[
    "SELECT", "INSERT", "UPDATE", "DELETE", "REPLACE", "VALUES", "TABLE", "WITH", "MERGE",
];

/// Tokens of the first statement of `query`: up to the first `;` outside parentheses.
fn first_statement(query: &str, dialect: Dialect) -> Vec<Token> {
    let mut toks = Vec::new();
    let mut depth = 0usize;
    for t in Lexer::with_dialect(query, dialect) {
        match t.kind {
            Kind::Semi if depth == 0 => {
                if toks.is_empty() {
                    continue;
                }
                break;
            }
            Kind::Open => depth += 1,
            Kind::Close => depth = depth.saturating_sub(1),
            _ => {}
        }
        toks.push(t);
        if toks.len() >= MAX_TOKENS {
            break;
        }
    }
    toks
}

type Described = (Option<String>, Option<String>);

thread_local! {
    /// Texts without literals described before (see [`super::memo`]).
    static MEMO: RefCell<Memo<Described>> = RefCell::new(Memo::new());
}

/// See [`super::describe`].
pub(crate) fn describe(query: &str, dialect: Dialect) -> Described {
    cached(&MEMO, query, dialect, || fresh(query, dialect))
}

/// The description, and whether the statement read holds a literal.
fn fresh(query: &str, dialect: Dialect) -> (Described, bool) {
    let toks = first_statement(query, dialect);
    let s = Stmt {
        src: query,
        toks: &toks,
    };
    let mut budget = BUDGET;
    let literals = toks.iter().any(|t| matches!(t.kind, Kind::Num | Kind::Str));
    (s.describe(&mut budget), literals)
}

/// A run of tokens with its source text.
#[derive(Clone, Copy)]
struct Stmt<'a> {
    src: &'a str,
    toks: &'a [Token],
}

/// A common table expression: its name and the token range of its body.
struct Cte {
    name: String,
    body: (usize, usize),
}

impl<'a> Stmt<'a> {
    fn sub(&self, from: usize, to: usize) -> Stmt<'a> {
        let to = to.min(self.toks.len());
        Stmt {
            src: self.src,
            toks: self.toks.get(from.min(to)..to).unwrap_or(&[]),
        }
    }

    fn kind(&self, i: usize) -> Option<Kind> {
        self.toks.get(i).map(|t| t.kind)
    }

    fn kw(&self, i: usize, kw: &str) -> bool {
        self.toks.get(i).is_some_and(|t| t.is_kw(self.src, kw))
    }

    fn kw_any(&self, i: usize, kws: &[&str]) -> bool {
        kws.iter().any(|k| self.kw(i, k))
    }

    fn skip_kws(&self, mut i: usize, kws: &[&str]) -> usize {
        while self.kw_any(i, kws) {
            i += 1;
        }
        i
    }

    /// Index of the token closing the group opened at `open` (or the end).
    fn close_of(&self, open: usize) -> usize {
        let mut depth = 0usize;
        for (j, t) in self.toks.iter().enumerate().skip(open) {
            match t.kind {
                Kind::Open => depth += 1,
                Kind::Close => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return j;
                    }
                }
                _ => {}
            }
        }
        self.toks.len()
    }

    /// One part of a name at `i`, unquoted.
    fn name_part(&self, i: usize) -> Option<String> {
        let t = self.toks.get(i)?;
        let text = t.text(self.src);
        match t.kind {
            Kind::Quoted => Some(unquote(text)),
            Kind::Word
                if !text.starts_with('@')
                    && !NOT_A_NAME.iter().any(|k| text.eq_ignore_ascii_case(k)) =>
            {
                Some(text.to_string())
            }
            _ => None,
        }
    }

    /// A possibly qualified name at `i` (`db.t`, `"public"."orders"`): the name and the index
    /// after it.
    fn name(&self, i: usize) -> Option<(String, usize)> {
        let mut name = self.name_part(i)?;
        let mut j = i + 1;
        for _ in 0..3 {
            if self.kind(j) != Some(Kind::Dot) {
                break;
            }
            match self.name_part(j + 1) {
                Some(part) => {
                    name.push('.');
                    name.push_str(&part);
                    j += 2;
                }
                None => break,
            }
        }
        Some((name, j))
    }

    fn table_at(&self, i: usize) -> Option<String> {
        self.name(i).map(|(n, _)| n)
    }

    /// Describes `self` in a nested call, when the budget allows one.
    fn nested(&self, budget: &mut u8) -> (Option<String>, Option<String>) {
        if *budget == 0 {
            return (None, None);
        }
        *budget -= 1;
        self.describe(budget)
    }

    fn describe(&self, budget: &mut u8) -> (Option<String>, Option<String>) {
        let skip_open = |mut i: usize| {
            while matches!(self.kind(i), Some(Kind::Open | Kind::Semi))
                || self.toks.get(i).is_some_and(|t| t.text(self.src) == "{")
            {
                i += 1;
            }
            i
        };
        let mut i = skip_open(0);
        let mut ctes = Vec::new();
        if self.kw(i, "WITH") {
            match self.ctes(i + 1, &mut ctes) {
                Some(next) => i = skip_open(next),
                None => return (Some("WITH".to_string()), None),
            }
        }
        let Some(t) = self.toks.get(i) else {
            return (None, None);
        };
        let word = t.text(self.src);
        if t.kind != Kind::Word
            || word.len() > MAX_OP
            || !word.bytes().all(|c| c.is_ascii_alphabetic() || c == b'_')
        {
            return (None, None);
        }
        let op = word.to_ascii_uppercase();
        let rest = self.sub(i + 1, self.toks.len());
        let mut table = rest.table(&op, budget);
        // A table that is one of the statement's CTEs: report what the CTE reads instead.
        for _ in 0..BUDGET {
            let Some(name) = table.as_deref() else { break };
            let Some(cte) = ctes.iter().find(|c| c.name.eq_ignore_ascii_case(name)) else {
                break;
            };
            let body = self.sub(cte.body.0, cte.body.1);
            table = match body.nested(budget).1 {
                // Recursive CTE reading itself: look past it.
                Some(n) if n.eq_ignore_ascii_case(name) => body.scan_from(Some(name)),
                other => other,
            };
        }
        (Some(op), table)
    }

    /// Reads `name [(cols)] AS [NOT] [MATERIALIZED] (body) [, ...]` after `WITH`; returns the
    /// index of the main statement.
    fn ctes(&self, mut i: usize, out: &mut Vec<Cte>) -> Option<usize> {
        i = self.skip_kws(i, &["RECURSIVE"]);
        loop {
            let name = self.name_part(i)?;
            i += 1;
            if self.kind(i) == Some(Kind::Open) {
                i = self.close_of(i) + 1;
            }
            if !self.kw(i, "AS") {
                return None;
            }
            i = self.skip_kws(i + 1, &["NOT", "MATERIALIZED"]);
            if self.kind(i) != Some(Kind::Open) {
                return None;
            }
            let close = self.close_of(i);
            out.push(Cte {
                name,
                body: (i + 1, close),
            });
            i = close + 1;
            // PostgreSQL's SEARCH/CYCLE clauses: skip to the next `,` or statement word.
            while i < self.toks.len()
                && self.kind(i) != Some(Kind::Comma)
                && !self.kw_any(i, STATEMENTS)
                && self.kind(i) != Some(Kind::Open)
            {
                i += 1;
            }
            if self.kind(i) == Some(Kind::Comma) {
                i += 1;
            } else {
                return Some(i);
            }
        }
    }

    /// The first table of a statement whose operation `op` was just read (`self` starts after
    /// it).
    fn table(&self, op: &str, budget: &mut u8) -> Option<String> {
        match op {
            "SELECT" | "VALUES" => self.scan_from(None),
            "INSERT" | "REPLACE" => {
                let i = self.skip_kws(
                    0,
                    &["LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY", "IGNORE", "INTO"],
                );
                self.table_at(i)
            }
            "UPDATE" => self.table_at(self.skip_kws(0, &["LOW_PRIORITY", "IGNORE", "ONLY"])),
            "DELETE" => {
                let i = self.skip_kws(0, &["LOW_PRIORITY", "QUICK", "IGNORE", "FROM", "ONLY"]);
                self.table_at(i)
            }
            "MERGE" => self.table_at(self.skip_kws(0, &["INTO", "ONLY"])),
            "CREATE" | "DROP" | "ALTER" | "TRUNCATE" => self.ddl_table(op),
            "COPY" => {
                if self.kind(0) == Some(Kind::Open) {
                    self.scan_from(None)
                } else {
                    self.table_at(self.skip_kws(0, &["BINARY"]))
                }
            }
            "LOCK" => self.table_at(self.skip_kws(0, &["TABLES", "TABLE", "ONLY"])),
            "TABLE" => self.table_at(self.skip_kws(0, &["ONLY"])),
            "EXPLAIN" | "DESCRIBE" | "DESC" => self.explained_table(budget),
            _ => None,
        }
    }

    /// `EXPLAIN [ANALYZE] [VERBOSE] [(options)] [FORMAT=x] statement`, or MySQL's
    /// `DESCRIBE tbl`.
    fn explained_table(&self, budget: &mut u8) -> Option<String> {
        let mut i = 0;
        loop {
            if self.kw_any(i, &["ANALYZE", "VERBOSE", "EXTENDED", "PARTITIONS"]) {
                i += 1;
            } else if self.kw(i, "FORMAT")
                && self.toks.get(i + 1).is_some_and(|t| t.kind == Kind::Op)
            {
                i += 3;
            } else if self.kind(i) == Some(Kind::Open) && !self.kw_any(i + 1, STATEMENTS) {
                i = self.close_of(i) + 1;
            } else {
                break;
            }
        }
        let rest = self.sub(i, self.toks.len());
        let first_is_statement = rest.kw_any(0, STATEMENTS) || rest.kind(0) == Some(Kind::Open);
        if !first_is_statement {
            return rest.table_at(0);
        }
        rest.nested(budget).1
    }

    /// `CREATE [..] TABLE [IF NOT EXISTS] t`, `DROP TABLE [IF EXISTS] t`, `ALTER TABLE [ONLY]
    /// t`, `TRUNCATE [TABLE] [ONLY] t`, `CREATE [UNIQUE] INDEX [..] ON [ONLY] t`.
    fn ddl_table(&self, op: &str) -> Option<String> {
        let after_table = &["IF", "NOT", "EXISTS", "ONLY"];
        for i in 0..8 {
            if self.kind(i) != Some(Kind::Word) {
                break;
            }
            if self.kw(i, "TABLE") {
                return self.table_at(self.skip_kws(i + 1, after_table));
            }
            if self.kw(i, "INDEX") {
                let on = (i + 1..i + 16).find(|&j| self.kw(j, "ON"))?;
                return self.table_at(self.skip_kws(on + 1, &["ONLY"]));
            }
        }
        if op == "TRUNCATE" {
            return self.table_at(self.skip_kws(0, &["ONLY"]));
        }
        None
    }

    /// The first table after `FROM` at the top level or in a subquery (not inside a function
    /// call such as `EXTRACT(x FROM y)`); failing that, the first table after `JOIN`. A table
    /// equal to `skip` is passed over.
    fn scan_from(&self, skip: Option<&str>) -> Option<String> {
        // One entry per open parenthesis: does it hold a subquery?
        let mut subquery: Vec<bool> = Vec::new();
        let mut joined = None;
        for i in 0..self.toks.len() {
            let t = self.toks[i];
            match t.kind {
                Kind::Open => {
                    let sub = self.kw_any(i + 1, &["SELECT", "WITH", "VALUES", "TABLE"])
                        || (i > 0 && self.kw_any(i - 1, &["FROM", "JOIN", "LATERAL"]));
                    subquery.push(sub);
                    continue;
                }
                Kind::Close => {
                    subquery.pop();
                    continue;
                }
                Kind::Word => {}
                _ => continue,
            }
            if !subquery.last().copied().unwrap_or(true) {
                continue;
            }
            let from = t.is_kw(self.src, "FROM") && !(i > 0 && self.kw(i - 1, "DISTINCT"));
            let join = t.is_kw(self.src, "JOIN");
            if !from && !join {
                continue;
            }
            let j = self.skip_kws(i + 1, &["ONLY", "LATERAL"]);
            let Some((name, after)) = self.name(j) else {
                continue;
            };
            // `FROM generate_series(..)`: a function, not a table.
            if self.kind(after) == Some(Kind::Open)
                || skip.is_some_and(|s| s.eq_ignore_ascii_case(&name))
            {
                continue;
            }
            if from {
                return Some(name);
            }
            joined.get_or_insert(name);
        }
        joined
    }
}

/// `"a""b"` -> `a"b`, `` `a``b` `` -> ``a`b``, `U&"x"` -> `x`.
fn unquote(text: &str) -> String {
    let text = text
        .strip_prefix("U&")
        .or_else(|| text.strip_prefix("u&"))
        .unwrap_or(text);
    let Some(q) = text.chars().next() else {
        return String::new();
    };
    let inner = text
        .strip_prefix(q)
        .and_then(|t| t.strip_suffix(q))
        .unwrap_or(text);
    let doubled: String = [q, q].iter().collect();
    inner.replace(&doubled, &q.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A text described again is answered from the cache only when it has no literal, and the
    /// answer is the one a fresh pass gives.
    #[test]
    fn kept_texts_are_described_as_a_fresh_pass_would() {
        let cases = [
            (
                "SELECT abalance FROM pgbench_accounts WHERE aid = $1;",
                true,
            ),
            ("UPDATE \"Orders\" SET total = ? WHERE id = ?", true),
            ("BEGIN", true),
            (
                "SELECT abalance FROM pgbench_accounts WHERE aid = 42;",
                false,
            ),
            ("INSERT INTO t (a) VALUES ('x')", false),
        ];
        for (q, kept) in cases {
            for d in [Dialect::Mysql, Dialect::Postgres] {
                let want = fresh(q, d).0;
                assert!(want.0.is_some(), "{q}");
                assert_eq!(describe(q, d), want, "{q}");
                assert_eq!(describe(q, d), want, "{q}, again");
                let cached = MEMO.with(|m| m.borrow().get(q, d));
                assert_eq!(cached.is_some(), kept, "{q}");
            }
        }
    }
}
