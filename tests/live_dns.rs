//! Live DNS: the agent observes a real dnsmasq answering dig over UDP (unconnected socket,
//! peers from recvmsg/sendmsg) and over TCP (several queries on one connection). Root only
//! (CI is root); WIRELENS_SKIP_ROOT_TESTS=1 skips it.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// dig's answer status and answer count for each query it made.
fn dig(port: u16, extra: &[&str], queries: &[(&str, &str)]) -> Vec<(String, usize)> {
    let mut cmd = Command::new("dig");
    cmd.args(["@127.0.0.1", "-p", &port.to_string(), "+tries=1", "+time=3"]);
    cmd.args(extra);
    for (name, qtype) in queries {
        cmd.args([*name, *qtype]);
    }
    let out = cmd.output().expect("dig (Debian: dnsutils)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut res = Vec::new();
    for block in text.split("->>HEADER<<-").skip(1) {
        let status = block
            .split("status: ")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .unwrap_or("?")
            .to_string();
        let answers = block
            .split("ANSWER: ")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(usize::MAX);
        res.push((status, answers));
    }
    assert_eq!(res.len(), queries.len(), "dig output:\n{text}");
    res
}

fn wait_udp(port: u16) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        let out = Command::new("dig")
            .args([
                "@127.0.0.1",
                "-p",
                &port.to_string(),
                "+tries=1",
                "+time=1",
                "host.test",
            ])
            .output();
        if out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("status: NOERROR")) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("dnsmasq does not answer on {port}");
}

fn summary(records: &[Value]) -> Vec<(String, String, String, u64)> {
    records
        .iter()
        .map(|r| {
            (
                r["request"]["name"].as_str().unwrap_or("").to_string(),
                r["request"]["type"].as_str().unwrap_or("").to_string(),
                r["response"]["rcode"].as_str().unwrap_or("").to_string(),
                r["response"]["answers"].as_u64().unwrap_or(u64::MAX),
            )
        })
        .collect()
}

#[test]
fn root_live_dns_udp_and_tcp_against_dnsmasq() {
    if !root_tests_enabled() {
        return;
    }
    let _g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let port = free_port();
    let server = dnsmasq(port);
    wait_udp(port);
    let agent = Agent::start(&["--pid".to_string(), server.pid().to_string()]);
    let udp = [
        ("host.test", "A"),
        ("host.test", "AAAA"),
        ("test", "MX"),
        ("txt.test", "TXT"),
        ("alias.test", "A"),
        ("nope.test", "A"),
    ];
    let mut got = Vec::new();
    for q in udp {
        got.extend(dig(port, &[], &[q]));
    }
    let tcp = [
        ("host.test", "A"),
        ("mail.test", "A"),
        ("missing.test", "AAAA"),
    ];
    got.extend(dig(port, &["+tcp", "+keepopen"], &tcp));
    let (records, stderr) = agent.stop();
    let expected: Vec<(String, String, String, u64)> = udp
        .iter()
        .chain(tcp.iter())
        .zip(&got)
        .map(|((n, t), (status, answers))| {
            (
                n.to_string(),
                t.to_string(),
                status.clone(),
                *answers as u64,
            )
        })
        .collect();
    assert_eq!(expected[5].2, "NXDOMAIN");
    let mut seen = summary(&records);
    // UDP queries are answered in order; the TCP ones too, on one connection.
    assert_eq!(seen.len(), expected.len(), "{records:?}\n{stderr}");
    seen.sort();
    let mut want = expected.clone();
    want.sort();
    assert_eq!(seen, want, "{stderr}");
    for r in &records {
        assert_eq!(r["protocol"], "dns");
        assert_eq!(r["role"], "server");
        assert_eq!(r["server"]["port"], port);
        assert_eq!(r["process"]["comm"], "dnsmasq");
        let l = r["latency_ns"].as_u64().expect("latency");
        assert!(l > 0 && l < 5_000_000_000, "{r}");
        let expect = if r["response"]["rcode"] == "NOERROR" {
            "ok"
        } else {
            "error"
        };
        assert_eq!(r["status"], expect);
    }
}

/// A DNS query for `name` of type `qtype` (RFC 1035 section 4.1), recursion desired.
fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = Vec::new();
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    q
}

/// dnsmasq on a free port and the agent capturing this test process, for the tests that are
/// their own DNS client. The guard keeps the live tests one at a time; it is the last field,
/// so that on a failure the agent and dnsmasq are stopped before the next live test starts.
struct SelfObserved {
    agent: Agent,
    server: Proc,
    port: u16,
    _guard: std::sync::MutexGuard<'static, ()>,
}

impl SelfObserved {
    /// None when root tests are skipped.
    fn start() -> Option<SelfObserved> {
        if !root_tests_enabled() {
            return None;
        }
        let guard = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        let port = free_port();
        let server = dnsmasq(port);
        wait_udp(port);
        let agent = Agent::start(&["--pid".to_string(), std::process::id().to_string()]);
        Some(SelfObserved {
            agent,
            server,
            port,
            _guard: guard,
        })
    }

    /// Stops the agent and dnsmasq: the DNS records of exchanges with this dnsmasq, all the
    /// records, and the agent's stderr.
    fn finish(self) -> (Vec<Value>, Vec<Value>, String) {
        std::thread::sleep(Duration::from_millis(300));
        let (records, stderr) = self.agent.stop();
        drop(self.server);
        let dns = records
            .iter()
            .filter(|r| r["protocol"] == "dns" && r["server"]["port"] == self.port)
            .cloned()
            .collect();
        (dns, records, stderr)
    }
}

/// glibc's resolver sends its A and AAAA queries with one sendmmsg (and other clients read
/// with recvmmsg): both queries go out in one call, the answers come back through recvmmsg,
/// and the agent, capturing this process, must see two exchanges, one per message.
#[test]
fn root_live_dns_client_side_of_sendmmsg_and_recvmmsg() {
    use std::os::fd::AsRawFd;
    let Some(live) = SelfObserved::start() else {
        return;
    };
    let port = live.port;
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("binding a UDP socket");
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    let to: std::net::SocketAddrV4 = format!("127.0.0.1:{port}").parse().expect("address");
    let mut dst = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: to.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*to.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    let mut queries = [
        query(0x5a01, "host.test", 1),
        query(0x5a02, "host.test", 28),
    ];
    let mut iov: Vec<libc::iovec> = queries
        .iter_mut()
        .map(|q| libc::iovec {
            iov_base: q.as_mut_ptr().cast(),
            iov_len: q.len(),
        })
        .collect();
    // SAFETY: zeroed mmsghdrs are valid; each then points at live buffers of this frame.
    let mut msgs: Vec<libc::mmsghdr> = (0..2).map(|_| unsafe { std::mem::zeroed() }).collect();
    for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
        m.msg_hdr.msg_name = (&mut dst as *mut libc::sockaddr_in).cast();
        m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        m.msg_hdr.msg_iov = v;
        m.msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: `msgs` holds two valid mmsghdrs whose pointers outlive the call.
    let sent = unsafe { libc::sendmmsg(sock.as_raw_fd(), msgs.as_mut_ptr(), 2, 0) };
    assert_eq!(sent, 2, "sendmmsg: {}", std::io::Error::last_os_error());

    // Both answers, through recvmmsg (one call may return one or both).
    let mut bufs = [[0u8; 512]; 2];
    let mut answers: Vec<Vec<u8>> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while answers.len() < 2 && Instant::now() < deadline {
        let mut riov: Vec<libc::iovec> = bufs
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: b.len(),
            })
            .collect();
        // SAFETY: zeroed sockaddrs and mmsghdrs are valid; as above, for the receive side.
        let mut from: Vec<libc::sockaddr_in> =
            (0..2).map(|_| unsafe { std::mem::zeroed() }).collect();
        // SAFETY: as above.
        let mut rmsgs: Vec<libc::mmsghdr> = (0..2).map(|_| unsafe { std::mem::zeroed() }).collect();
        // The sender of each answer, as a client on an unconnected socket asks for it.
        for ((m, v), f) in rmsgs.iter_mut().zip(riov.iter_mut()).zip(from.iter_mut()) {
            m.msg_hdr.msg_name = (f as *mut libc::sockaddr_in).cast();
            m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            m.msg_hdr.msg_iov = v;
            m.msg_hdr.msg_iovlen = 1;
        }
        let want = (2 - answers.len()) as u32;
        // SAFETY: `rmsgs` holds valid mmsghdrs; blocking until one arrives (read timeout
        // set above bounds it).
        let got = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                rmsgs.as_mut_ptr(),
                want,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        assert!(got > 0, "recvmmsg: {}", std::io::Error::last_os_error());
        for (m, b) in rmsgs.iter().zip(bufs.iter()).take(got as usize) {
            answers.push(b[..m.msg_len as usize].to_vec());
        }
    }
    assert_eq!(answers.len(), 2, "dnsmasq answered {} of 2", answers.len());
    let rcode = |a: &[u8]| a[3] & 0x0f;
    let count = |a: &[u8]| u16::from_be_bytes([a[6], a[7]]);
    assert!(answers.iter().all(|a| rcode(a) == 0 && count(a) == 1));
    let (dns, records, stderr) = live.finish();
    let mut seen: Vec<(String, String, String, u64)> = summary(&dns);
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("host.test".into(), "A".into(), "NOERROR".into(), 1),
            ("host.test".into(), "AAAA".into(), "NOERROR".into(), 1),
        ],
        "{records:?}\n{stderr}"
    );
    for r in &dns {
        assert_eq!(r["role"], "client", "{r}");
        assert_eq!(r["client"]["ip"], "127.0.0.1", "{r}");
        assert_eq!(r["status"], "ok", "{r}");
    }
}

/// A client that sends from a UDP socket it never bound (`socket()` then `sendto()`, as many
/// resolvers do): the kernel picks the local port during the first send, after the agent
/// first saw the socket. The records must carry that port, not port 0.
#[test]
fn root_live_dns_unbound_udp_client_carries_its_port() {
    use std::os::fd::{FromRawFd, OwnedFd};
    let Some(live) = SelfObserved::start() else {
        return;
    };
    let port = live.port;
    // SAFETY: socket() returns a new fd or -1; a new fd is owned by nothing else.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` is a fresh, open socket that only this OwnedFd closes.
    let sock = std::net::UdpSocket::from(unsafe { OwnedFd::from_raw_fd(fd) });
    assert_eq!(
        sock.local_addr().map(|a| a.port()).unwrap_or(0),
        0,
        "the socket must not be bound before the first send"
    );
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    let names = ["host.test", "alias.test"];
    for (i, name) in names.iter().enumerate() {
        let q = query(0x6b00 + i as u16, name, 1);
        sock.send_to(&q, ("127.0.0.1", port)).expect("sendto");
        let mut buf = [0u8; 512];
        let (n, from) = sock.recv_from(&mut buf).expect("dnsmasq answers");
        assert_eq!(from.port(), port);
        assert!(n >= 12 && buf[..2] == q[..2], "the answer to query {i}");
    }
    let local = sock.local_addr().expect("bound by the first send");
    assert_ne!(local.port(), 0);
    let (dns, records, stderr) = live.finish();
    assert_eq!(dns.len(), names.len(), "{records:?}\n{stderr}");
    for r in &dns {
        assert_eq!(r["role"], "client", "{r}");
        assert_eq!(r["client"]["port"], local.port(), "{r}");
        // Unbound, the socket has no address of its own: the kernel picks the source address
        // of each datagram as it routes it, so the wildcard is what the socket says.
        assert_eq!(r["client"]["ip"], local.ip().to_string(), "{r}");
        assert_eq!(r["status"], "ok", "{r}");
    }
}
