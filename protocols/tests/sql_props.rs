//! Properties of `sql::describe` and `sql::obfuscate`:
//!
//! - any text (arbitrary Unicode, lossy-decoded bytes, and soups of SQL token fragments that
//!   hit the lexer's corners: open quotes, nested and executable comments, dollar tags,
//!   prefixes, signs) never panics, and `obfuscate` is idempotent on it;
//! - statements generated from parts (literals of every kind, comments holding secrets, MySQL
//!   and PostgreSQL names) obfuscate to exactly the expected skeleton, keep no numeric literal
//!   and no 4-character piece of a string literal or comment, and `describe` finds the
//!   generated operation and table.

use proptest::prelude::*;
use wirelens_protocols::sql::{describe, obfuscate};

/// Fragments that make the lexer's decisions interesting when glued together at random.
const FRAGMENTS: &[&str] = &[
    "'", "''", "\"", "`", "\\", "--", "#", "#>", "/*", "*/", "/*!", "/*!40101", "/*M!", "$$",
    "$a$", "$1", "$", "?", ":", "::", ":x", "@", "@@", "@v", "0x", "0x1F", "0b1", "1", "12", "1.5",
    ".", ".5", "e", "E", "1e5", "e-", "_", "_utf8", "U&", "N", "X", "B", "IN", "ARRAY", "VALUES",
    "VALUE", "ROW", "WITH", "AS", "SELECT", "FROM", "JOIN", "INTO", "(", ")", "[", "]", ",", ";",
    " ", "  ", "\n", "\t", "\r", "-", "+", "=", "<", ">", "|", "~", "!", "*", "/", "a", "t1", "é",
    "\u{a0}", "{", "}", "\0",
];

fn soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(FRAGMENTS), 0..40).prop_map(|v| v.concat())
}

fn check_any(text: &str) -> Result<(), TestCaseError> {
    let _ = describe(text);
    let once = obfuscate(text);
    let twice = obfuscate(&once);
    prop_assert_eq!(&twice, &once, "input {:?}", text);
    let _ = describe(&once);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(std::env::var("SQL_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000)))]

    #[test]
    fn any_unicode_never_panics_and_is_stable(text in any::<String>()) {
        check_any(&text)?;
    }

    #[test]
    fn any_bytes_never_panic_and_are_stable(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        check_any(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn fragment_soup_never_panics_and_is_stable(text in soup()) {
        check_any(&text)?;
    }
}

/// One piece of a generated statement: its text, what `obfuscate` must make of it, and the
/// secrets (numbers, string contents, comment texts) it holds.
#[derive(Clone, Debug, Default)]
struct Piece {
    text: String,
    want: String,
    numbers: Vec<String>,
    strings: Vec<String>,
}

impl Piece {
    fn code(s: &str) -> Piece {
        Piece {
            text: s.to_string(),
            want: s.to_string(),
            ..Piece::default()
        }
    }

    /// Pieces joined: `text_sep` between the texts, `want_sep` between the expectations.
    fn join(parts: &[Piece], text_sep: &str, want_sep: &str) -> Piece {
        Piece {
            text: parts
                .iter()
                .map(|p| p.text.as_str())
                .collect::<Vec<_>>()
                .join(text_sep),
            want: parts
                .iter()
                .map(|p| p.want.as_str())
                .collect::<Vec<_>>()
                .join(want_sep),
            numbers: parts.iter().flat_map(|p| p.numbers.clone()).collect(),
            strings: parts.iter().flat_map(|p| p.strings.clone()).collect(),
        }
    }
}

/// String contents: key words, semicolons, quotes, backslashes, comment markers, Unicode.
fn content() -> impl Strategy<Value = String> {
    let bits = prop_oneof![
        "[a-z0-9 %_.;:,-]{1,6}",
        Just("FROM".to_string()),
        Just("; DROP TABLE x".to_string()),
        Just("'".to_string()),
        Just("\"".to_string()),
        Just("\\".to_string()),
        Just("--".to_string()),
        Just("/*".to_string()),
        Just("*/".to_string()),
        Just("$".to_string()),
        Just("é✓".to_string()),
        Just("\n".to_string()),
    ];
    prop::collection::vec(bits, 0..6).prop_map(|v| v.concat())
}

/// A literal in one of the spellings of the two dialects.
fn literal() -> impl Strategy<Value = Piece> {
    let number = prop_oneof![
        (0u64..1_000_000_000).prop_map(|n| (n.to_string(), "?")),
        (1u64..100_000).prop_map(|n| (format!("-{n}"), "-?")),
        (0u32..100_000, 0u32..1000).prop_map(|(a, b)| (format!("{a}.{b}"), "?")),
        (1u32..1000, -30i32..30).prop_map(|(a, e)| (format!("{a}e{e}"), "?")),
        (1u64..u64::MAX).prop_map(|n| (format!("0x{n:X}"), "?")),
    ]
    .prop_map(|(text, want)| {
        let digits = text.trim_start_matches('-').to_string();
        Piece {
            text,
            want: want.to_string(),
            numbers: vec![digits],
            strings: vec![],
        }
    });
    let string = (content(), 0u8..8).prop_map(|(c, style)| {
        let backslashed = c.replace('\\', "\\\\");
        let text = match style {
            0 => format!("'{}'", backslashed.replace('\'', "''")),
            1 => format!("'{}'", backslashed.replace('\'', "\\'")),
            2 => format!("E'{}'", backslashed.replace('\'', "\\'")),
            3 => format!("N'{}'", backslashed.replace('\'', "''")),
            4 => format!("_utf8mb4'{}'", backslashed.replace('\'', "''")),
            5 => format!("$${}$$", c.replace('$', "")),
            6 => format!("$body${}$body$", c.replace('$', "")),
            _ => format!(
                "X'{}'",
                c.bytes().map(|b| format!("{b:02X}")).collect::<String>()
            ),
        };
        let secret = if style == 7 {
            c.bytes().map(|b| format!("{b:02X}")).collect()
        } else {
            c
        };
        Piece {
            text,
            want: "?".to_string(),
            numbers: vec![],
            strings: vec![secret],
        }
    });
    prop_oneof![number, string]
}

/// A comparison value: a literal, or a MySQL double-quoted string (only right after `=`).
fn compared() -> impl Strategy<Value = Piece> {
    prop_oneof![
        4 => literal(),
        1 => "[a-z ]{0,8}".prop_map(|c| Piece {
            text: format!("\"{c}\""),
            want: "?".to_string(),
            numbers: vec![],
            strings: vec![c],
        }),
    ]
}

/// Table spellings and the name `describe` reports.
const TABLES: &[(&str, &str)] = &[
    ("users", "users"),
    ("orders", "orders"),
    ("t1", "t1"),
    ("public.orders", "public.orders"),
    ("`shop`.`items`", "shop.items"),
    ("\"Weird Name\"", "Weird Name"),
    ("pgbench_accounts", "pgbench_accounts"),
];

const COLUMNS: &[&str] = &["id", "name", "c3", "amount_2", "\"Col\"", "`k`"];

/// Whitespace or a comment holding a secret, between two top-level pieces.
fn separator() -> impl Strategy<Value = (String, Option<String>)> {
    let secret = "[a-z0-9 ;']{4,12}";
    prop_oneof![
        3 => Just((" ".to_string(), None)),
        1 => Just(("\n\t ".to_string(), None)),
        1 => secret.prop_map(|s| (format!(" /* {s} */ "), Some(s))),
        1 => "[a-z0-9 ;']{4,12}".prop_map(|s| (format!(" -- {s}\n"), Some(s))),
        1 => "[a-z0-9 ;']{4,12}".prop_map(|s| (format!(" # {s}\n"), Some(s))),
    ]
}

/// A generated statement: the pieces, the operation and the table's index.
fn statement() -> impl Strategy<Value = (Vec<Piece>, &'static str, usize)> {
    let table = 0..TABLES.len();
    let col = || prop::sample::select(COLUMNS);
    let cols = prop::collection::vec(col(), 1..5);
    let select = (
        table.clone(),
        cols.clone(),
        col(),
        compared(),
        prop::option::of((col(), prop::collection::vec(literal(), 1..6))),
        prop::option::of(0u32..1000),
    )
        .prop_map(|(t, cols, c, v, list, limit)| {
            let mut p = vec![
                Piece::code("SELECT"),
                Piece::code(&cols.join(", ")),
                Piece::code("FROM"),
                Piece::code(TABLES[t].0),
                Piece::code("WHERE"),
                Piece::code(c),
                Piece::code("="),
                v,
            ];
            if let Some((c, items)) = list {
                let mut inner = Piece::join(&items, ", ", ", ");
                inner.text = format!("({})", inner.text);
                inner.want = "(?)".to_string();
                p.extend([Piece::code("AND"), Piece::code(c), Piece::code("IN"), inner]);
            }
            if let Some(n) = limit {
                p.push(Piece::code("LIMIT"));
                p.push(Piece {
                    text: n.to_string(),
                    want: "?".into(),
                    numbers: vec![n.to_string()],
                    strings: vec![],
                });
            }
            (p, "SELECT", t)
        });
    let insert = (table.clone(), cols, prop::collection::vec(literal(), 4 * 5))
        .prop_flat_map(|(t, cols, lits)| {
            let n = cols.len();
            (Just(t), Just(cols), Just(lits), 1..=(lits_rows(n)))
        })
        .prop_map(|(t, cols, lits, rows)| {
            let n = cols.len();
            let rows: Vec<Piece> = lits
                .chunks(n)
                .take(rows)
                .map(|row| {
                    let mut r = Piece::join(row, ", ", ", ");
                    r.text = format!("({})", r.text);
                    r.want = format!("({})", r.want);
                    r
                })
                .collect();
            let first_want = rows[0].want.clone();
            let mut values = Piece::join(&rows, ",", ",");
            values.want = first_want;
            let p = vec![
                Piece::code("INSERT INTO"),
                Piece::code(TABLES[t].0),
                Piece::code(&format!("({})", cols.join(", "))),
                Piece::code("VALUES"),
                values,
            ];
            (p, "INSERT", t)
        });
    let update = (
        table.clone(),
        col(),
        compared(),
        col(),
        literal(),
        literal(),
    )
        .prop_map(|(t, c1, v1, c2, lo, hi)| {
            let p = vec![
                Piece::code("UPDATE"),
                Piece::code(TABLES[t].0),
                Piece::code("SET"),
                Piece::code(c1),
                Piece::code("="),
                v1,
                Piece::code("WHERE"),
                Piece::code(c2),
                Piece::code("BETWEEN"),
                lo,
                Piece::code("AND"),
                hi,
            ];
            (p, "UPDATE", t)
        });
    let delete = (table, col(), compared()).prop_map(|(t, c, v)| {
        let p = vec![
            Piece::code("DELETE FROM"),
            Piece::code(TABLES[t].0),
            Piece::code("WHERE"),
            Piece::code(c),
            Piece::code("<>"),
            v,
        ];
        (p, "DELETE", t)
    });
    prop_oneof![select, insert, update, delete]
}

/// How many rows of `n` columns the 20 generated literals fill.
fn lits_rows(n: usize) -> usize {
    (20 / n).max(1)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(std::env::var("SQL_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000)))]

    #[test]
    fn generated_statements((pieces, op, t) in statement(),
                            seps in prop::collection::vec(separator(), 20)) {
        let mut text = String::new();
        let mut secrets: Vec<String> = Vec::new();
        for (i, p) in pieces.iter().enumerate() {
            if i > 0 {
                let (sep, secret) = &seps[i % seps.len()];
                text.push_str(sep);
                secrets.extend(secret.clone());
            }
            text.push_str(&p.text);
        }
        let want = pieces.iter().map(|p| p.want.as_str()).collect::<Vec<_>>().join(" ");
        let got = obfuscate(&text);
        prop_assert_eq!(&got, &want, "input {:?}", text);
        prop_assert_eq!(obfuscate(&got), got.clone());

        // No numeric literal survives as a word of the output.
        let words: Vec<&str> = got
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .collect();
        for n in pieces.iter().flat_map(|p| &p.numbers) {
            prop_assert!(!words.contains(&n.as_str()), "number {} in {:?}", n, got);
        }
        // No 4-character piece of a string literal or comment that the code itself does
        // not spell.
        let code: String = pieces.iter().map(|p| p.want.as_str()).collect::<Vec<_>>().join(" ");
        for s in pieces.iter().flat_map(|p| &p.strings).chain(&secrets) {
            let chars: Vec<char> = s.chars().collect();
            for w in chars.windows(4) {
                let w: String = w.iter().collect();
                prop_assert!(
                    code.contains(&w) || !got.contains(&w),
                    "{:?} of {:?} leaked into {:?}", w, s, got
                );
            }
        }

        let (got_op, got_table) = describe(&text);
        prop_assert_eq!(got_op.as_deref(), Some(op));
        prop_assert_eq!(got_table.as_deref(), Some(TABLES[t].1));
    }
}
