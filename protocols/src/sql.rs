//! SQL helpers shared by the MySQL and PostgreSQL parsers: the operation and first table of a
//! statement, and an obfuscator that replaces literals with `?` for exports that leave the
//! host. Placeholder until issue #3 lands.

/// Operation (upper case, e.g. `SELECT`) and first table named by a statement, when found.
pub fn describe(query: &str) -> (Option<String>, Option<String>) {
    let op = query
        .split_whitespace()
        .next()
        .map(|w| w.to_ascii_uppercase());
    (op, None)
}

/// The statement with every literal (strings, numbers, lists) replaced by `?`.
pub fn obfuscate(query: &str) -> String {
    query.to_string()
}
