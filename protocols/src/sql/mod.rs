//! SQL helpers shared by the MySQL and PostgreSQL parsers: the operation and first table of a
//! statement ([`describe`]), and an obfuscator that replaces literals with `?` for exports that
//! leave the host ([`obfuscate`], see `shared/record-schema.md`: exports to shared back ends
//! never carry literal values).
//!
//! Both work on a hand-written lexer ([`lex`]) that reads the token spelling of both dialects
//! (PostgreSQL 15 manual 4.1 "Lexical Structure"; MySQL 8.0 manual 11 "Language Structure").
//! Neither ever panics, recurses on the input's nesting, or takes more than linear time.

mod describe;
mod lex;
mod memo;
mod obfuscate;

pub use lex::Dialect;

/// Operation (upper case, e.g. `SELECT`) and first table named by a statement, when found.
///
/// Only the first statement of a multi-statement text is read (`SELECT 1; SELECT 2` is
/// `SELECT`); comments are skipped, the code inside MySQL `/*! ... */` is read.
///
/// - Operation: the first word after leading parentheses and `WITH` clauses, upper case
///   (`WITH x AS (..) SELECT` is `SELECT`; `EXPLAIN`, `BEGIN`, `END`, `SET`, `SHOW`, `CALL`,
///   `CREATE`, `DROP`, `ALTER`, `TRUNCATE`, `COPY` ... are the word itself). `None` when the
///   text does not start with a plain word.
/// - Table: the first table after `FROM` (`SELECT`, `VALUES`; at the top level or in a
///   subquery, not inside `EXTRACT(.. FROM ..)`-like calls; `FROM (SELECT ..)` gives the inner
///   table; table functions are passed over), failing that after `JOIN`; after `INTO` or the
///   modifiers for `INSERT`/`REPLACE`/`MERGE`; after `UPDATE`, `DELETE [FROM]`, `COPY`,
///   `LOCK [TABLE]`, `TABLE`; after `TABLE [IF [NOT] EXISTS]` for `CREATE`/`DROP`/`ALTER`/
///   `TRUNCATE`, after `ON` for `CREATE INDEX`; the table of the explained statement for
///   `EXPLAIN` (MySQL's `DESCRIBE t` gives `t`). Qualifiers are kept (`public.orders`),
///   quotes removed, case kept. A table that names one of the statement's CTEs is replaced by
///   the first table that CTE reads. `SELECT 1`, `SET`, `BEGIN`, `SHOW`, `CALL`... have none.
///
/// Strings are read as MySQL spells them; [`describe_as`] names the dialect.
pub fn describe(query: &str) -> (Option<String>, Option<String>) {
    describe::describe(query, Dialect::Mysql)
}

/// [`describe`] with the string spelling of `dialect`.
pub fn describe_as(query: &str, dialect: Dialect) -> (Option<String>, Option<String>) {
    describe::describe(query, dialect)
}

/// The statement with every literal (strings, numbers, lists) replaced by `?`.
///
/// Canonical form, stable under a second pass (`obfuscate(obfuscate(x)) == obfuscate(x)`):
///
/// - Each string (`'..'` with any `E`/`N`/`X`/`B`/`U&`/`_charset` prefix, `$tag$..$tag$`) and
///   each number (`42`, `-` stays an operator: `-1` is `-?`, `1.5e3`, `0x1F`, `0b01`) becomes
///   `?`. A quote left open makes the rest of the text one literal: `?`.
/// - `"..."` is kept as an identifier (PostgreSQL) except where it can only be a MySQL string:
///   right after a comparison (`=`, `<>`, `<=>`, ...) or `LIKE`/`ILIKE`/`RLIKE`/`REGEXP`, or as
///   a whole element of a `VALUES` row or `IN` list; `` `..` `` identifiers are kept.
/// - A list of literals after `IN` or `ARRAY` (optionally signed, or tuples of them, `?`
///   included) collapses to one: `IN (1, 2, 3)` and `IN ((1, 'a'), (2, 'b'))` are `IN (?)`,
///   `ARRAY[1, 2]` is `ARRAY[?]`.
/// - Multi-row `VALUES` keeps only its first row, obfuscated (so the column count stays):
///   `VALUES (1, 'a'), (2, 'b')` is `VALUES (?, ?)`; `VALUES ROW(..), ROW(..)` likewise.
/// - Identifiers, key words (case kept), operators, placeholders (`?`, `$1`, `:name`) and
///   `NULL`/`TRUE`/`FALSE` are kept; numbers inside names (`t1`, `t2.c3`, `db.1t`) are names.
/// - Comments are dropped (they can hold secrets); the code of MySQL `/*! .. */` is kept.
/// - Spacing: tokens are separated by one space where the input had whitespace or a comment
///   between them and by nothing where it had none, except: no space after `(`/`[` nor before
///   `,` `)` `]` `;`, exactly one after `,` and `;`. Leading and trailing space is dropped.
///
/// Strings are read as MySQL spells them (a backslash escapes in every quoted string): a
/// PostgreSQL standard string ending in a backslash (`'C:\'`) would run on to the next quote,
/// so PostgreSQL statements go through [`obfuscate_as`] with [`Dialect::Postgres`].
pub fn obfuscate(query: &str) -> String {
    obfuscate::obfuscate(query, Dialect::Mysql)
}

/// [`obfuscate`] with the string spelling of `dialect`.
pub fn obfuscate_as(query: &str, dialect: Dialect) -> String {
    obfuscate::obfuscate(query, dialect)
}
