//! The tiny-ring drill shared by the SQL protocols: a one-page ring buffer, the agent paused
//! while one client connection runs a burst of statements that answer one row and two rows,
//! then resumed while the burst still runs. Events are lost; the kernel reports the lost calls
//! with the connection's next event, and no record may give a statement the other one's row
//! count.

use serde_json::Value;

/// Statements in the burst.
pub const BURST: usize = 20_000;

/// The agent's arguments for the drill, watching `pid`: a ring of one page, and payload
/// prefixes short enough that each statement fits one event.
pub fn tiny_ring_args(pid: u32) -> Vec<String> {
    [
        "--pid",
        &pid.to_string(),
        "--ring-buffer-bytes",
        "4096",
        "--capture-bytes",
        "256",
    ]
    .map(String::from)
    .to_vec()
}

/// The burst, one statement a line: every third answers two rows (its text has `UNION`), the
/// others one.
pub fn burst_sql() -> String {
    (0..BURST)
        .map(|i| {
            if i % 3 == 0 {
                "SELECT 1 UNION ALL SELECT 2;\n"
            } else {
                "SELECT 1;\n"
            }
        })
        .collect()
}

/// The rows a client prints for the whole burst.
pub fn burst_rows() -> usize {
    BURST + BURST.div_ceil(3)
}

/// A record's statement (`request.query`), empty when it has none.
pub fn query(r: &Value) -> &str {
    r["request"]["query"].as_str().unwrap_or_default()
}

/// Checks the burst's records: both statements are reported, fewer than the burst's (events
/// were lost), and none with the other's row count. `note` is printed with the count of
/// mispaired records.
pub fn assert_none_mispaired(server: &str, burst: &[&Value], note: &str) {
    let two_rows = |r: &Value| query(r).contains("UNION");
    let mispaired: Vec<String> = burst
        .iter()
        .filter(|r| (r["response"]["rows"] == 2) != two_rows(r))
        .map(|r| format!("{} -> {}", query(r), r["response"]["rows"]))
        .collect();
    eprintln!(
        "{} of {} {server} records paired with another statement's answer{note}",
        mispaired.len(),
        burst.len()
    );
    assert!(
        burst.iter().any(|r| two_rows(r)) && burst.iter().any(|r| !two_rows(r)),
        "the records should hold both statements: {}",
        burst.len()
    );
    assert!(
        burst.len() < BURST,
        "with events lost, fewer than {BURST} statements can be reported: {}",
        burst.len()
    );
    assert!(
        mispaired.is_empty(),
        "{} of {} {server} records paired with another statement's answer: {:?}",
        mispaired.len(),
        burst.len(),
        &mispaired[..mispaired.len().min(10)]
    );
}
