//! Table-driven cases for `sql::describe` and `sql::obfuscate`, MySQL and PostgreSQL spellings:
//! each row is a statement, the operation and table `describe` must find, and the exact text
//! `obfuscate` must give (the canonical form documented on `sql::obfuscate`).

use wirelens_protocols::sql::{describe, describe_as, obfuscate, obfuscate_as, Dialect};

/// (statement, operation, table, obfuscated)
type Case = (
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    &'static str,
);

const PGBENCH: &[Case] = &[
    (
        "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;",
        Some("UPDATE"),
        Some("pgbench_accounts"),
        "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;",
    ),
    (
        "SELECT abalance FROM pgbench_accounts WHERE aid = $1;",
        Some("SELECT"),
        Some("pgbench_accounts"),
        "SELECT abalance FROM pgbench_accounts WHERE aid = $1;",
    ),
    (
        "UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2;",
        Some("UPDATE"),
        Some("pgbench_tellers"),
        "UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2;",
    ),
    (
        "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP);",
        Some("INSERT"),
        Some("pgbench_history"),
        "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP);",
    ),
    ("BEGIN;", Some("BEGIN"), None, "BEGIN;"),
    ("END;", Some("END"), None, "END;"),
    (
        // pgbench simple protocol: the literals are in the text.
        "UPDATE pgbench_branches SET bbalance = bbalance + -4021 WHERE bid = 1;",
        Some("UPDATE"),
        Some("pgbench_branches"),
        "UPDATE pgbench_branches SET bbalance = bbalance + -? WHERE bid = ?;",
    ),
    (
        "copy pgbench_accounts from stdin with (freeze on)",
        Some("COPY"),
        Some("pgbench_accounts"),
        "copy pgbench_accounts from stdin with (freeze on)",
    ),
    (
        "vacuum analyze pgbench_branches",
        Some("VACUUM"),
        None,
        "vacuum analyze pgbench_branches",
    ),
    (
        "truncate table pgbench_history",
        Some("TRUNCATE"),
        Some("pgbench_history"),
        "truncate table pgbench_history",
    ),
];

const SYSBENCH: &[Case] = &[
    (
        "SELECT c FROM sbtest1 WHERE id=5042",
        Some("SELECT"),
        Some("sbtest1"),
        "SELECT c FROM sbtest1 WHERE id=?",
    ),
    (
        "SELECT c FROM sbtest3 WHERE id BETWEEN 4969 AND 5068 ORDER BY c",
        Some("SELECT"),
        Some("sbtest3"),
        "SELECT c FROM sbtest3 WHERE id BETWEEN ? AND ? ORDER BY c",
    ),
    (
        "SELECT SUM(k) FROM sbtest1 WHERE id BETWEEN ? AND ?",
        Some("SELECT"),
        Some("sbtest1"),
        "SELECT SUM(k) FROM sbtest1 WHERE id BETWEEN ? AND ?",
    ),
    (
        "SELECT DISTINCT c FROM sbtest2 WHERE id BETWEEN 1 AND 100 ORDER BY c",
        Some("SELECT"),
        Some("sbtest2"),
        "SELECT DISTINCT c FROM sbtest2 WHERE id BETWEEN ? AND ? ORDER BY c",
    ),
    (
        "UPDATE sbtest1 SET k=k+1 WHERE id=4972",
        Some("UPDATE"),
        Some("sbtest1"),
        "UPDATE sbtest1 SET k=k+? WHERE id=?",
    ),
    (
        "UPDATE sbtest1 SET c='83868641912-28773972837-60736120486' WHERE id=5010",
        Some("UPDATE"),
        Some("sbtest1"),
        "UPDATE sbtest1 SET c=? WHERE id=?",
    ),
    (
        "DELETE FROM sbtest1 WHERE id=5013",
        Some("DELETE"),
        Some("sbtest1"),
        "DELETE FROM sbtest1 WHERE id=?",
    ),
    (
        "INSERT INTO sbtest1 (id, k, c, pad) VALUES (5013, 4985, '1-2-3', '4-5')",
        Some("INSERT"),
        Some("sbtest1"),
        "INSERT INTO sbtest1 (id, k, c, pad) VALUES (?, ?, ?, ?)",
    ),
    (
        "INSERT INTO sbtest1 (id, k, c, pad) VALUES (?, ?, ?, ?)",
        Some("INSERT"),
        Some("sbtest1"),
        "INSERT INTO sbtest1 (id, k, c, pad) VALUES (?, ?, ?, ?)",
    ),
];

const MYSQL: &[Case] = &[
    ("SELECT 1", Some("SELECT"), None, "SELECT ?"),
    (
        "select @@version_comment limit 1",
        Some("SELECT"),
        None,
        "select @@version_comment limit ?",
    ),
    (
        "SELECT 1 FROM DUAL",
        Some("SELECT"),
        None,
        "SELECT ? FROM DUAL",
    ),
    (
        "SELECT * FROM `shop`.`order items` WHERE `id` = 7",
        Some("SELECT"),
        Some("shop.order items"),
        "SELECT * FROM `shop`.`order items` WHERE `id` = ?",
    ),
    (
        "INSERT INTO t(a,b) VALUES (1,'x'),(2,'y'),(3,'z')",
        Some("INSERT"),
        Some("t"),
        "INSERT INTO t(a, b) VALUES (?, ?)",
    ),
    (
        "INSERT IGNORE INTO users SET name = 'bob', age = 42",
        Some("INSERT"),
        Some("users"),
        "INSERT IGNORE INTO users SET name = ?, age = ?",
    ),
    (
        "INSERT users VALUE (1)",
        Some("INSERT"),
        Some("users"),
        "INSERT users VALUE (?)",
    ),
    (
        "INSERT INTO t (a) VALUES (1), (2) ON DUPLICATE KEY UPDATE a = VALUES(a), b = 3",
        Some("INSERT"),
        Some("t"),
        "INSERT INTO t (a) VALUES (?) ON DUPLICATE KEY UPDATE a = VALUES(a), b = ?",
    ),
    (
        "REPLACE INTO kv (k, v) VALUES ('a', 'b')",
        Some("REPLACE"),
        Some("kv"),
        "REPLACE INTO kv (k, v) VALUES (?, ?)",
    ),
    (
        "SELECT name FROM users WHERE name = \"alice\" AND note LIKE \"%x%\"",
        Some("SELECT"),
        Some("users"),
        "SELECT name FROM users WHERE name = ? AND note LIKE ?",
    ),
    (
        "INSERT INTO t VALUES (\"a\", 'b', -1.5)",
        Some("INSERT"),
        Some("t"),
        "INSERT INTO t VALUES (?, ?, -?)",
    ),
    (
        "SELECT * FROM t WHERE s = 'it\\'s' AND u = 'a''b'",
        Some("SELECT"),
        Some("t"),
        "SELECT * FROM t WHERE s = ? AND u = ?",
    ),
    (
        "SELECT x'1F', X'ab', 0x1F, b'01', 0b01, _utf8mb4'é', N'n'",
        Some("SELECT"),
        None,
        "SELECT ?, ?, ?, ?, ?, ?, ?",
    ),
    (
        "/*!40101 SET NAMES utf8mb4 */",
        Some("SET"),
        None,
        "SET NAMES utf8mb4",
    ),
    (
        "/*!40103 SET TIME_ZONE='+00:00' */;",
        Some("SET"),
        None,
        "SET TIME_ZONE=?;",
    ),
    (
        "SELECT /*+ MAX_EXECUTION_TIME(1000) */ a FROM t # trailing secret 1234\n",
        Some("SELECT"),
        Some("t"),
        "SELECT a FROM t",
    ),
    (
        "# FROM fake\nDELETE LOW_PRIORITY QUICK FROM logs WHERE ts < '2024-01-01'",
        Some("DELETE"),
        Some("logs"),
        "DELETE LOW_PRIORITY QUICK FROM logs WHERE ts < ?",
    ),
    (
        "DELETE t1 FROM t1 JOIN t2 ON t1.id = t2.id WHERE t2.x = 9",
        Some("DELETE"),
        Some("t1"),
        "DELETE t1 FROM t1 JOIN t2 ON t1.id = t2.id WHERE t2.x = ?",
    ),
    (
        "UPDATE LOW_PRIORITY items i JOIN prices p ON p.id = i.id SET i.p = p.p * 1.1",
        Some("UPDATE"),
        Some("items"),
        "UPDATE LOW_PRIORITY items i JOIN prices p ON p.id = i.id SET i.p = p.p * ?",
    ),
    ("SHOW TABLES", Some("SHOW"), None, "SHOW TABLES"),
    ("CALL do_it(1, 'x')", Some("CALL"), None, "CALL do_it(?, ?)"),
    (
        "DESCRIBE users",
        Some("DESCRIBE"),
        Some("users"),
        "DESCRIBE users",
    ),
    (
        "EXPLAIN FORMAT=JSON SELECT * FROM orders WHERE id = 3",
        Some("EXPLAIN"),
        Some("orders"),
        "EXPLAIN FORMAT=JSON SELECT * FROM orders WHERE id = ?",
    ),
    (
        "LOCK TABLES accounts WRITE",
        Some("LOCK"),
        Some("accounts"),
        "LOCK TABLES accounts WRITE",
    ),
    (
        "SET @x := 5, @y = 'abc'",
        Some("SET"),
        None,
        "SET @x := ?, @y = ?",
    ),
    (
        "SELECT doc->>'$.name' FROM docs WHERE id IN (1,2,3)",
        Some("SELECT"),
        Some("docs"),
        "SELECT doc->>? FROM docs WHERE id IN (?)",
    ),
    (
        "SELECT * FROM db.1tbl WHERE c1 = 1e5",
        Some("SELECT"),
        Some("db.1tbl"),
        "SELECT * FROM db.1tbl WHERE c1 = ?",
    ),
    (
        "START TRANSACTION",
        Some("START"),
        None,
        "START TRANSACTION",
    ),
    (
        "CREATE TABLE IF NOT EXISTS `t-1` (id INT PRIMARY KEY, v VARCHAR(20) DEFAULT 'x')",
        Some("CREATE"),
        Some("t-1"),
        "CREATE TABLE IF NOT EXISTS `t-1` (id INT PRIMARY KEY, v VARCHAR(?) DEFAULT ?)",
    ),
    (
        "DROP TABLE IF EXISTS a, b",
        Some("DROP"),
        Some("a"),
        "DROP TABLE IF EXISTS a, b",
    ),
    (
        "ALTER TABLE users ADD COLUMN age INT DEFAULT 0",
        Some("ALTER"),
        Some("users"),
        "ALTER TABLE users ADD COLUMN age INT DEFAULT ?",
    ),
    (
        "CREATE UNIQUE INDEX idx_email ON users (email)",
        Some("CREATE"),
        Some("users"),
        "CREATE UNIQUE INDEX idx_email ON users (email)",
    ),
    (
        "VALUES ROW(1, 2), ROW(3, 4)",
        Some("VALUES"),
        None,
        "VALUES ROW(?, ?)",
    ),
    (
        "SELECT 5--1\nFROM t",
        Some("SELECT"),
        Some("t"),
        "SELECT ? FROM t",
    ),
];

const PGSQL: &[Case] = &[
    (
        "SELECT * FROM \"public\".\"Orders\" o WHERE o.\"Id\" = 10",
        Some("SELECT"),
        Some("public.Orders"),
        "SELECT * FROM \"public\".\"Orders\" o WHERE o.\"Id\" = ?",
    ),
    (
        "select * from public.orders where status = any($1::text[])",
        Some("SELECT"),
        Some("public.orders"),
        "select * from public.orders where status = any($1::text[])",
    ),
    (
        "WITH recent AS (SELECT * FROM events WHERE ts > now() - interval '1 day') SELECT count(*) FROM recent",
        Some("SELECT"),
        Some("events"),
        "WITH recent AS (SELECT * FROM events WHERE ts > now() - interval ?) SELECT count(*) FROM recent",
    ),
    (
        "WITH RECURSIVE t(n) AS (VALUES (1) UNION ALL SELECT n+1 FROM t WHERE n < 100) SELECT sum(n) FROM t",
        Some("SELECT"),
        None,
        "WITH RECURSIVE t(n) AS (VALUES (?) UNION ALL SELECT n+? FROM t WHERE n < ?) SELECT sum(n) FROM t",
    ),
    (
        "WITH moved AS (DELETE FROM queue WHERE id = 5 RETURNING *) INSERT INTO done SELECT * FROM moved",
        Some("INSERT"),
        Some("done"),
        "WITH moved AS (DELETE FROM queue WHERE id = ? RETURNING *) INSERT INTO done SELECT * FROM moved",
    ),
    (
        "SELECT * FROM (SELECT id FROM inner_t WHERE x = 'a') sub",
        Some("SELECT"),
        Some("inner_t"),
        "SELECT * FROM (SELECT id FROM inner_t WHERE x = ?) sub",
    ),
    (
        "SELECT extract(year FROM created_at), substring(name FROM 2 FOR 3) FROM people",
        Some("SELECT"),
        Some("people"),
        "SELECT extract(year FROM created_at), substring(name FROM ? FOR ?) FROM people",
    ),
    (
        "SELECT * FROM generate_series(1, 10) g JOIN items i ON i.n = g",
        Some("SELECT"),
        Some("items"),
        "SELECT * FROM generate_series(?, ?) g JOIN items i ON i.n = g",
    ),
    (
        "SELECT $$FROM secret; DROP TABLE x$$, $tag$it's$tag$ FROM t2",
        Some("SELECT"),
        Some("t2"),
        "SELECT ?, ? FROM t2",
    ),
    (
        "SELECT E'\\x41\\'', U&'d\\0061t', B'1010', 1_000_000, .5e-3 FROM t",
        Some("SELECT"),
        Some("t"),
        "SELECT ?, ?, ?, ?, ? FROM t",
    ),
    (
        "SELECT data #>> '{a,b}', tags @> ARRAY['x','y'] FROM docs",
        Some("SELECT"),
        Some("docs"),
        "SELECT data #>> ?, tags @> ARRAY[?] FROM docs",
    ),
    (
        "SELECT a FROM t WHERE (a, b) IN ((1, 'x'), (2, 'y'))",
        Some("SELECT"),
        Some("t"),
        "SELECT a FROM t WHERE (a, b) IN (?)",
    ),
    (
        "SELECT a FROM t WHERE a NOT IN (SELECT b FROM u WHERE c = 1)",
        Some("SELECT"),
        Some("t"),
        "SELECT a FROM t WHERE a NOT IN (SELECT b FROM u WHERE c = ?)",
    ),
    (
        "INSERT INTO t AS x (a) VALUES (DEFAULT), (2) ON CONFLICT (a) DO UPDATE SET a = EXCLUDED.a RETURNING id",
        Some("INSERT"),
        Some("t"),
        "INSERT INTO t AS x (a) VALUES (DEFAULT) ON CONFLICT (a) DO UPDATE SET a = EXCLUDED.a RETURNING id",
    ),
    (
        "UPDATE ONLY accounts SET bal = bal - 10.25 FROM rates WHERE rates.id = accounts.rid",
        Some("UPDATE"),
        Some("accounts"),
        "UPDATE ONLY accounts SET bal = bal - ? FROM rates WHERE rates.id = accounts.rid",
    ),
    (
        "DELETE FROM ONLY s.t USING u WHERE s.t.id = u.id",
        Some("DELETE"),
        Some("s.t"),
        "DELETE FROM ONLY s.t USING u WHERE s.t.id = u.id",
    ),
    (
        "COPY (SELECT * FROM big WHERE k > 3) TO STDOUT",
        Some("COPY"),
        Some("big"),
        "COPY (SELECT * FROM big WHERE k > ?) TO STDOUT",
    ),
    (
        "COPY t (a, b) FROM STDIN WITH (FORMAT csv)",
        Some("COPY"),
        Some("t"),
        "COPY t (a, b) FROM STDIN WITH (FORMAT csv)",
    ),
    (
        "EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM t3 WHERE x = :id",
        Some("EXPLAIN"),
        Some("t3"),
        "EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM t3 WHERE x = :id",
    ),
    (
        "CREATE UNLOGGED TABLE IF NOT EXISTS public.cache (k text, v bytea)",
        Some("CREATE"),
        Some("public.cache"),
        "CREATE UNLOGGED TABLE IF NOT EXISTS public.cache (k text, v bytea)",
    ),
    (
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS i1 ON ONLY orders USING btree (created_at)",
        Some("CREATE"),
        Some("orders"),
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS i1 ON ONLY orders USING btree (created_at)",
    ),
    (
        "TRUNCATE ONLY audit RESTART IDENTITY",
        Some("TRUNCATE"),
        Some("audit"),
        "TRUNCATE ONLY audit RESTART IDENTITY",
    ),
    (
        "SET search_path = \"$user\", public",
        Some("SET"),
        None,
        "SET search_path = ?, public",
    ),
    (
        "SELECT '2024-01-01'::date, x::int, 'a' || 'b' FROM t",
        Some("SELECT"),
        Some("t"),
        "SELECT ?::date, x::int, ? || ? FROM t",
    ),
    (
        "(SELECT a FROM t1) UNION ALL (SELECT a FROM t2)",
        Some("SELECT"),
        Some("t1"),
        "(SELECT a FROM t1) UNION ALL (SELECT a FROM t2)",
    ),
    (
        "SELECT a IS DISTINCT FROM b FROM pairs",
        Some("SELECT"),
        Some("pairs"),
        "SELECT a IS DISTINCT FROM b FROM pairs",
    ),
    (
        "SELECT * FROM t WHERE a = -1 AND b=-2 AND c = +3 AND d = 4-5",
        Some("SELECT"),
        Some("t"),
        "SELECT * FROM t WHERE a = -? AND b=-? AND c = +? AND d = ?-?",
    ),
    ("TABLE films", Some("TABLE"), Some("films"), "TABLE films"),
    (
        "MERGE INTO stock s USING deliveries d ON s.id = d.id WHEN MATCHED THEN UPDATE SET n = n + 1",
        Some("MERGE"),
        Some("stock"),
        "MERGE INTO stock s USING deliveries d ON s.id = d.id WHEN MATCHED THEN UPDATE SET n = n + ?",
    ),
    (
        "LOCK TABLE ledger IN ACCESS EXCLUSIVE MODE",
        Some("LOCK"),
        Some("ledger"),
        "LOCK TABLE ledger IN ACCESS EXCLUSIVE MODE",
    ),
    (
        "SELECT a[1:2], b[3] FROM arr",
        Some("SELECT"),
        Some("arr"),
        "SELECT a[?:?], b[?] FROM arr",
    ),
];

/// Comments hiding fake key words, strings holding key words and semicolons, several
/// statements, odd spacing, broken input.
const TRICKY: &[Case] = &[
    (
        "/* DELETE FROM fake */ -- UPDATE fake2\n  SELECT a FROM real_t",
        Some("SELECT"),
        Some("real_t"),
        "SELECT a FROM real_t",
    ),
    (
        "SELECT a /* FROM fake */ FROM real_t",
        Some("SELECT"),
        Some("real_t"),
        "SELECT a FROM real_t",
    ),
    (
        "SELECT 'FROM fake; DROP TABLE x' AS s FROM real_t",
        Some("SELECT"),
        Some("real_t"),
        "SELECT ? AS s FROM real_t",
    ),
    (
        "SELECT 'a\\' FROM fake' FROM real_t",
        Some("SELECT"),
        Some("real_t"),
        "SELECT ? FROM real_t",
    ),
    (
        "SELECT 1; SELECT 2 FROM t",
        Some("SELECT"),
        None,
        "SELECT ?; SELECT ? FROM t",
    ),
    (
        "INSERT INTO a VALUES (1); DELETE FROM b",
        Some("INSERT"),
        Some("a"),
        "INSERT INTO a VALUES (?); DELETE FROM b",
    ),
    (
        ";;  select\n\t*\r\nfrom   T1  where c3=2 ;",
        Some("SELECT"),
        Some("T1"),
        ";; select * from T1 where c3=?;",
    ),
    (
        "SELECT ( ( 1 ) ) , f( a , 'b' ) FROM t",
        Some("SELECT"),
        Some("t"),
        "SELECT ((?)), f(a, ?) FROM t",
    ),
    (
        "SELECT * FROM t WHERE password = 'unterminated",
        Some("SELECT"),
        Some("t"),
        "SELECT * FROM t WHERE password = ?",
    ),
    (
        "SELECT 1 /* unterminated comment 42",
        Some("SELECT"),
        None,
        "SELECT ?",
    ),
    (
        "SELECT * FROM t WHERE s = $q$never closed",
        Some("SELECT"),
        Some("t"),
        "SELECT * FROM t WHERE s = ?",
    ),
    ("", None, None, ""),
    ("   -- only a comment", None, None, ""),
    ("42", None, None, "?"),
    ("'just a string'", None, None, "?"),
    (
        "{call proc(?, 'x')}",
        Some("CALL"),
        None,
        "{call proc(?, ?)}",
    ),
    (
        "SELECT t1.c2, tbl3.col4 FROM tbl3, t1 WHERE t1.id=tbl3.id",
        Some("SELECT"),
        Some("tbl3"),
        "SELECT t1.c2, tbl3.col4 FROM tbl3, t1 WHERE t1.id=tbl3.id",
    ),
    (
        "SELECT (SELECT max(x) FROM inner1) FROM outer1",
        Some("SELECT"),
        Some("inner1"),
        "SELECT (SELECT max(x) FROM inner1) FROM outer1",
    ),
    (
        "SELECT * FROM t WHERE id IN (?, ?, ?) AND k IN ($1, $2)",
        Some("SELECT"),
        Some("t"),
        "SELECT * FROM t WHERE id IN (?) AND k IN ($1, $2)",
    ),
    (
        "SELECT * FROM t WHERE id IN (1, x, 'y')",
        Some("SELECT"),
        Some("t"),
        "SELECT * FROM t WHERE id IN (?, x, ?)",
    ),
    (
        "insert into t values (1, (select max(a) from u where b in (1,2))), (2, 3)",
        Some("INSERT"),
        Some("t"),
        "insert into t values (?, (select max(a) from u where b in (?)))",
    ),
    (
        "SELECT ((((((((((1))))))))))",
        Some("SELECT"),
        None,
        "SELECT ((((((((((?))))))))))",
    ),
    (
        "UPDATE t SET note = 'line1\nline2 ; -- not a comment' WHERE id = 1",
        Some("UPDATE"),
        Some("t"),
        "UPDATE t SET note = ? WHERE id = ?",
    ),
    (
        "select ünïcode_tbl.ç FROM ünïcode_tbl WHERE n = 'çà'",
        Some("SELECT"),
        Some("ünïcode_tbl"),
        "select ünïcode_tbl.ç FROM ünïcode_tbl WHERE n = ?",
    ),
    (
        // Only ASCII whitespace separates tokens (both dialects): U+00A0 is part of a name.
        "select\u{a0}x FROM t",
        None,
        None,
        "select\u{a0}x FROM t",
    ),
];

fn check(cases: &[Case], dialect: Dialect) -> usize {
    let mut failures = Vec::new();
    for &(query, op, table, obfuscated) in cases {
        let got = describe_as(query, dialect);
        let want = (op.map(String::from), table.map(String::from));
        if got != want {
            failures.push(format!("describe({query:?}) = {got:?}, want {want:?}"));
        }
        let got = obfuscate_as(query, dialect);
        if got != obfuscated {
            failures.push(format!(
                "obfuscate({query:?}) = {got:?}, want {obfuscated:?}"
            ));
        }
        let again = obfuscate_as(&got, dialect);
        if again != got {
            failures.push(format!("obfuscate not idempotent on {got:?}: {again:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    cases.len()
}

#[test]
fn pgbench_statements() {
    check(PGBENCH, Dialect::Postgres);
}

#[test]
fn sysbench_statements() {
    check(SYSBENCH, Dialect::Mysql);
}

#[test]
fn mysql_dialect() {
    check(MYSQL, Dialect::Mysql);
}

#[test]
fn pgsql_dialect() {
    check(PGSQL, Dialect::Postgres);
    // Without a backslash in them, the statements read the same under either spelling.
    check(PGSQL, Dialect::Mysql);
}

#[test]
fn tricky_text() {
    check(TRICKY, Dialect::Mysql);
}

/// Backslashes under PostgreSQL's standard strings: an ordinary character, except in `E'..'`.
const PG_BACKSLASH: &[Case] = &[
    (
        // The string ends at its second quote: the next literal must not be read as code.
        "SELECT * FROM files WHERE path = 'C:\\' AND owner = 'secret'",
        Some("SELECT"),
        Some("files"),
        "SELECT * FROM files WHERE path = ? AND owner = ?",
    ),
    (
        "UPDATE t SET a = E'it\\'s' WHERE b = 'x\\'",
        Some("UPDATE"),
        Some("t"),
        "UPDATE t SET a = ? WHERE b = ?",
    ),
    (
        "SELECT \"a\\\" FROM \"odd\\\"",
        Some("SELECT"),
        Some("odd\\"),
        "SELECT \"a\\\" FROM \"odd\\\"",
    ),
    (
        "INSERT INTO logs VALUES (U&'d\\0061t', 'a\\', 7)",
        Some("INSERT"),
        Some("logs"),
        "INSERT INTO logs VALUES (?, ?, ?)",
    ),
];

#[test]
fn pgsql_backslashes() {
    check(PG_BACKSLASH, Dialect::Postgres);
}

#[test]
fn mysql_backslash_escapes_where_postgres_does_not() {
    // MySQL reads `'C:\' AND owner = '` as one string: what follows is not a literal
    // there, which is why PostgreSQL statements must be read in their own dialect.
    let q = "SELECT * FROM files WHERE path = 'C:\\' AND owner = 'secret'";
    assert_eq!(
        obfuscate_as(q, Dialect::Mysql),
        "SELECT * FROM files WHERE path = ?secret?"
    );
    assert_eq!(
        obfuscate_as(q, Dialect::Postgres),
        "SELECT * FROM files WHERE path = ? AND owner = ?"
    );
}

#[test]
fn enough_cases() {
    let n = PGBENCH.len() + SYSBENCH.len() + MYSQL.len() + PGSQL.len() + TRICKY.len();
    assert!(n >= 60, "{n} cases");
}

#[test]
fn deep_nesting_is_bounded() {
    // Far deeper than any recursion would survive; describe reads the first 65536 tokens.
    let deep = format!(
        "SELECT {}1{} FROM t",
        "(".repeat(30_000),
        ")".repeat(30_000)
    );
    assert_eq!(describe(&deep), (Some("SELECT".into()), Some("t".into())));
    let deeper = format!(
        "SELECT {}1{} FROM t",
        "(".repeat(200_000),
        ")".repeat(200_000)
    );
    assert_eq!(describe(&deeper), (Some("SELECT".into()), None));
    let want = format!(
        "SELECT {}?{} FROM t",
        "(".repeat(200_000),
        ")".repeat(200_000)
    );
    assert_eq!(obfuscate(&deeper), want);
    let open = format!("SELECT * FROM t WHERE a IN {}", "(".repeat(100_000));
    assert_eq!(obfuscate(&open), open);
    // Nested CTEs that each resolve to the next: a bounded number of nested descriptions.
    let mut nested = "SELECT * FROM base".to_string();
    for _ in 0..2_000 {
        nested = format!("WITH a AS ({nested}) SELECT * FROM a");
    }
    let start = std::time::Instant::now();
    assert_eq!(describe(&nested).0.as_deref(), Some("SELECT"));
    assert!(start.elapsed() < std::time::Duration::from_secs(2));
    let values = format!(
        "INSERT INTO t VALUES {}",
        vec!["(1, 'a')"; 50_000].join(",")
    );
    assert_eq!(obfuscate(&values), "INSERT INTO t VALUES (?, ?)");
}
