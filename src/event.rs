//! The events every capture source produces and the pipeline consumes.
//!
//! The live source (eBPF ring buffer) and the replay source (pcap files) both reduce traffic
//! to these: ordered runs of bytes on a connection, and the connection's end. Everything
//! after capture (conntrack, parse, pair, output) is shared.

use std::net::SocketAddr;

use wirelens_protocols::Protocol;
pub use wirelens_protocols::Transport;

/// Identifies one connection within one source. Live: (tgid, fd, table-entry time), so a
/// reused fd is a new connection. Replay: the flow's index in the capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnKey {
    pub tgid: u32,
    pub fd: i32,
    pub start_ns: u64,
}

/// The traced process, live only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: u32,
    pub comm: String,
}

/// Who opened the connection, when the source knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientHint {
    /// Not known: the pipeline decides from which side sent the first request.
    Unknown,
    /// The endpoint with this address is the client (seen in a SYN, or connect()/accept()).
    Client(SocketAddr),
}

/// A run of bytes one endpoint sent on a connection.
#[derive(Clone, Debug)]
pub struct DataEvent {
    pub conn: ConnKey,
    /// Unix time, ns, when the bytes were seen.
    pub ts_ns: u64,
    /// The endpoint that sent the bytes.
    pub src: SocketAddr,
    /// The endpoint that received them.
    pub dst: SocketAddr,
    pub client: ClientHint,
    /// Live: the traced process and its socket's local address (which is `src` for a write and
    /// `dst` for a read). `None` in replay.
    pub observer: Option<Observer>,
    /// The protocol the source inferred (the kernel does, live), if any.
    pub protocol: Option<Protocol>,
    /// TCP (a byte stream) or UDP (each event one datagram).
    pub transport: Transport,
    /// The captured bytes.
    pub data: Vec<u8>,
    /// Bytes that followed `data` in the stream but were not captured.
    pub missing: u64,
    /// Bytes of this connection's earlier calls whose events never arrived (live: the ring
    /// buffer was full), since its previous event: they come before `data` in their
    /// direction's stream and are skipped there as a gap.
    pub lost_before: LostBefore,
}

/// Bytes lost before an event, by direction, seen from the observer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LostBefore {
    /// Bytes the observed process sent.
    pub sent: u64,
    /// Bytes it received.
    pub received: u64,
}

impl LostBefore {
    pub fn any(&self) -> bool {
        self.sent > 0 || self.received > 0
    }
}

/// The traced process behind a live event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observer {
    pub process: ProcessInfo,
    pub local: SocketAddr,
}

/// Something that happened on a connection.
// Nearly every event is `Data`, and the live reader refills one slot in place:
// boxing the large variant would only add an indirection.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum SourceEvent {
    Data(DataEvent),
    /// The connection ended: closed by the process (live), FIN (`reset: false`) or RST
    /// (`reset: true`) seen in a capture.
    Close {
        conn: ConnKey,
        ts_ns: u64,
        reset: bool,
    },
    /// The end of a source's input (a replay file ended): flush what is paired.
    End {
        ts_ns: u64,
    },
}
