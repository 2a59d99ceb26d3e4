//! The server's response to one command, read packet by packet: OK, ERR, a text or binary
//! result set (several with SERVER_MORE_RESULTS_EXISTS), COM_STMT_PREPARE_OK with its
//! definitions, LOCAL INFILE, and the few commands with a shape of their own
//! ("Text Protocol", "Prepared Statements", "Generic Response Packets").
//!
//! EOF packets are told from OK packets by their bytes (an EOF is shorter than 7 bytes, see
//! [`wire::is_eof`]), so a result set is read the same whether CLIENT_DEPRECATE_EOF was
//! negotiated or not. Only the end of a COM_STMT_PREPARE response depends on it (an EOF may
//! follow the last definition); when the handshake was not seen, the first result set tells.

use super::packet::Packet;
use super::stitch::Pending;
use super::wire::{self, status};

/// What the response to a command looks like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expect {
    /// OK, ERR, one or more result sets, or a LOCAL INFILE request.
    Generic,
    /// COM_STMT_PREPARE_OK and its parameter and column definitions, or ERR.
    Prepare,
    /// COM_STMT_FETCH: binary rows and a terminator, or ERR.
    Fetch,
    /// COM_FIELD_LIST: column definitions and a terminator, or ERR.
    FieldList,
    /// COM_STATISTICS: one human-readable string.
    Text,
    /// COM_CHANGE_USER: an authentication exchange ending in OK or ERR.
    Auth,
}

/// Whether result sets and prepare responses carry EOF packets (no CLIENT_DEPRECATE_EOF).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EofMode {
    Eof,
    Deprecate,
    /// The handshake was not seen and no result set told yet.
    Unknown,
}

/// Connection state a response reads and updates.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub eof: EofMode,
    /// The client is sending a LOCAL INFILE file.
    pub infile: bool,
}

impl Ctx {
    fn learn(&mut self, mode: EofMode) {
        if self.eof == EofMode::Unknown {
            self.eof = mode;
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// The first packet of a result (of the command, or after SERVER_MORE_RESULTS_EXISTS).
    Start,
    /// Column definitions of a result set still to come.
    Defs(u64),
    /// After the definitions: an EOF, or (CLIENT_DEPRECATE_EOF) the first row or terminator.
    AfterDefs,
    Rows,
    FieldList,
    /// The client sends a LOCAL INFILE file; the server then answers OK or ERR.
    Infile,
    Auth,
    Params {
        left: u16,
        columns: u16,
    },
    /// After the parameter definitions: an EOF (`optional`: when the mode is unknown).
    ParamsEof {
        columns: u16,
        optional: bool,
    },
    Columns(u16),
    ColumnsEof,
}

/// What a packet did to the response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fed {
    More,
    Done,
    /// Done, but an EOF may still follow (COM_STMT_PREPARE, mode unknown): the next packet, if
    /// it is an EOF with the next sequence id, belongs here.
    DoneUnlessEof,
    /// Not a valid packet here.
    Invalid,
}

/// The response being read and the request it answers.
#[derive(Debug)]
pub(crate) struct Answer {
    pub req: Pending,
    state: State,
    /// Rows returned or affected, summed over the results.
    pub rows: Option<u64>,
    set_rows: u64,
    pub error: Option<(Option<u16>, String)>,
    pub truncated: bool,
    /// The framing was lost inside it: its end and row count are unknown.
    pub lost: bool,
    /// Capture time of its last byte seen.
    pub last_ts: u64,
    /// COM_STMT_PREPARE_OK gave this statement id.
    pub prepared: Option<u32>,
}

impl Answer {
    pub(crate) fn new(req: Pending, ts: u64) -> Answer {
        Answer {
            req,
            state: State::Start,
            rows: None,
            set_rows: 0,
            error: None,
            truncated: false,
            lost: false,
            last_ts: ts,
            prepared: None,
        }
    }

    /// A capture gap swallowed part of it.
    pub(crate) fn lose(&mut self, ts: u64) {
        self.lost = true;
        self.truncated = true;
        self.last_ts = self.last_ts.max(ts);
    }

    pub(crate) fn feed(&mut self, p: &Packet<'_>, ctx: &mut Ctx) -> Fed {
        self.last_ts = p.last_ts;
        self.truncated |= p.gap;
        let first = p.first();
        match self.state {
            State::Start => self.start(p, ctx),
            State::Defs(left) => {
                self.state = if left <= 1 {
                    State::AfterDefs
                } else {
                    State::Defs(left - 1)
                };
                Fed::More
            }
            State::AfterDefs => {
                if wire::is_eof(first, p.len) {
                    ctx.learn(EofMode::Eof);
                    let st = wire::eof_status(p.payload).unwrap_or(0);
                    if self.req.cursor && st & status::CURSOR_EXISTS != 0 {
                        // Rows come later, with COM_STMT_FETCH.
                        self.rows = Some(self.rows.unwrap_or(0));
                        return Fed::Done;
                    }
                    self.state = State::Rows;
                    return Fed::More;
                }
                ctx.learn(EofMode::Deprecate);
                self.state = State::Rows;
                self.row(p)
            }
            State::Rows => self.row(p),
            State::FieldList => match first {
                Some(0xff) => self.error(p),
                _ if wire::is_terminator(first, p.len) => Fed::Done,
                _ => Fed::More,
            },
            State::Infile => {
                ctx.infile = false;
                match first {
                    Some(0xff) => self.error(p),
                    Some(0x00) => self.ok(p),
                    _ => Fed::Invalid,
                }
            }
            State::Auth => match first {
                Some(0x00) => Fed::Done,
                Some(0xff) => self.error(p),
                // Auth switch (0xFE), more data (0x01): the exchange goes on.
                _ => Fed::More,
            },
            State::Params { left, columns } => {
                if left > 1 {
                    self.state = State::Params {
                        left: left - 1,
                        columns,
                    };
                    return Fed::More;
                }
                match ctx.eof {
                    EofMode::Eof => {
                        self.state = State::ParamsEof {
                            columns,
                            optional: false,
                        };
                        Fed::More
                    }
                    EofMode::Deprecate => self.columns(columns),
                    EofMode::Unknown if columns == 0 => Fed::DoneUnlessEof,
                    EofMode::Unknown => {
                        self.state = State::ParamsEof {
                            columns,
                            optional: true,
                        };
                        Fed::More
                    }
                }
            }
            State::ParamsEof { columns, optional } => {
                if wire::is_eof(first, p.len) {
                    ctx.learn(EofMode::Eof);
                    return self.columns(columns);
                }
                if !optional || columns == 0 {
                    return Fed::Invalid;
                }
                // No EOF: this is the first column definition.
                ctx.learn(EofMode::Deprecate);
                self.state = State::Columns(columns);
                self.feed(p, ctx)
            }
            State::Columns(left) => {
                if left > 1 {
                    self.state = State::Columns(left - 1);
                    return Fed::More;
                }
                match ctx.eof {
                    EofMode::Eof => {
                        self.state = State::ColumnsEof;
                        Fed::More
                    }
                    EofMode::Deprecate => Fed::Done,
                    EofMode::Unknown => Fed::DoneUnlessEof,
                }
            }
            State::ColumnsEof => {
                if wire::is_eof(first, p.len) {
                    Fed::Done
                } else {
                    Fed::Invalid
                }
            }
        }
    }

    fn start(&mut self, p: &Packet<'_>, ctx: &mut Ctx) -> Fed {
        let first = p.first();
        match (self.req.expect, first) {
            (_, None) => Fed::Invalid,
            (Expect::Text, Some(0xff)) => self.error(p),
            (Expect::Text, _) => Fed::Done,
            (Expect::Auth, _) => {
                self.state = State::Auth;
                self.feed(p, ctx)
            }
            (Expect::Fetch, _) => {
                self.state = State::Rows;
                self.row(p)
            }
            (Expect::FieldList, _) => {
                self.state = State::FieldList;
                self.feed(p, ctx)
            }
            (_, Some(0xff)) => self.error(p),
            (Expect::Prepare, Some(0x00)) => self.prepare_ok(p),
            (_, Some(0x00)) => self.ok(p),
            (_, Some(0xfe)) if wire::is_terminator(first, p.len) => {
                // COM_SET_OPTION, COM_DEBUG, COM_SHUTDOWN answer with an EOF.
                if !wire::is_eof(first, p.len) {
                    return self.ok(p);
                }
                self.more_results(wire::eof_status(p.payload))
            }
            (Expect::Generic, Some(0xfb)) if self.req.cmd == 0x03 => {
                ctx.infile = true;
                self.state = State::Infile;
                Fed::More
            }
            _ => match wire::column_count(p.payload, p.len) {
                Some((count, metadata)) => {
                    self.set_rows = 0;
                    self.state = if metadata {
                        State::Defs(count)
                    } else {
                        State::AfterDefs
                    };
                    Fed::More
                }
                None => Fed::Invalid,
            },
        }
    }

    fn ok(&mut self, p: &Packet<'_>) -> Fed {
        match wire::ok(p.payload) {
            Some(ok) => {
                self.rows = Some(self.rows.unwrap_or(0).saturating_add(ok.affected_rows));
                self.more_results(ok.status)
            }
            None => Fed::Invalid,
        }
    }

    fn more_results(&mut self, st: Option<u16>) -> Fed {
        if st.unwrap_or(0) & status::MORE_RESULTS_EXISTS != 0 {
            self.state = State::Start;
            Fed::More
        } else {
            Fed::Done
        }
    }

    fn error(&mut self, p: &Packet<'_>) -> Fed {
        match wire::err(p.payload) {
            Some(e) if e.code == wire::PROGRESS_CODE => Fed::More,
            Some(e) => {
                let msg = String::from_utf8_lossy(e.message).into_owned();
                self.error = Some((Some(e.code), msg));
                Fed::Done
            }
            None => {
                self.error = Some((None, String::new()));
                Fed::Done
            }
        }
    }

    fn row(&mut self, p: &Packet<'_>) -> Fed {
        let first = p.first();
        if first == Some(0xff) {
            return self.error(p);
        }
        if wire::is_terminator(first, p.len) {
            self.rows = Some(self.rows.unwrap_or(0).saturating_add(self.set_rows));
            self.set_rows = 0;
            return self.more_results(wire::terminator_status(p.payload, p.len));
        }
        self.set_rows += 1;
        Fed::More
    }

    fn prepare_ok(&mut self, p: &Packet<'_>) -> Fed {
        let Some(ok) = wire::prepare_ok(p.payload) else {
            return Fed::Invalid;
        };
        self.prepared = Some(ok.statement_id);
        if !ok.metadata {
            return Fed::Done;
        }
        if ok.params > 0 {
            self.state = State::Params {
                left: ok.params,
                columns: ok.columns,
            };
            return Fed::More;
        }
        self.columns(ok.columns)
    }

    fn columns(&mut self, columns: u16) -> Fed {
        if columns == 0 {
            return Fed::Done;
        }
        self.state = State::Columns(columns);
        Fed::More
    }

    /// The rows counted, unless the framing was lost inside the response.
    pub(crate) fn rows(&self) -> Option<u64> {
        if self.lost {
            None
        } else {
            self.rows
        }
    }

    /// Whether the response is a LOCAL INFILE transfer (the client is sending a file).
    pub(crate) fn infile(&self) -> bool {
        self.state == State::Infile
    }

    /// Whether the response is an authentication exchange (COM_CHANGE_USER).
    pub(crate) fn auth(&self) -> bool {
        self.req.expect == Expect::Auth
    }
}
