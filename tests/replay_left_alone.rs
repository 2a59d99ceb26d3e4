//! Connections that switch to something no parser can read (TLS, compression) produce no
//! record and are counted, not silently dropped.

mod golden;

fn counter(stderr: &str, name: &str) -> u64 {
    stderr
        .split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {stderr}"))
}

#[test]
fn tls_and_compressed_connections_are_counted_as_left_alone() {
    for (pcap, conns) in [
        ("fixtures/mysql/tls.pcap", 1),
        ("fixtures/mysql/compressed.pcap", 1),
        ("fixtures/pgsql/encrypted.pcap", 2),
    ] {
        let (run, records) = golden::replay_ok(pcap);
        assert!(records.is_empty(), "{pcap}: {records:?}");
        assert_eq!(counter(&run.stderr, "conns_left_alone"), conns, "{pcap}");
        assert_eq!(counter(&run.stderr, "records"), 0, "{pcap}");
    }
    // A readable connection is not counted.
    let (run, _) = golden::replay_ok("fixtures/mysql/cli_script.pcap");
    assert_eq!(counter(&run.stderr, "conns_left_alone"), 0);
}
