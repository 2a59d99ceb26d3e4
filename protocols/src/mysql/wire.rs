//! Payload layouts of the MySQL client/server protocol, read with nom from the captured prefix
//! of a packet's payload. Section names refer to the MySQL source documentation ("Client/Server
//! Protocol", dev.mysql.com/doc/dev/mysql-server/latest/PAGE_PROTOCOL.html) and to MariaDB's
//! "Clients & Connectors / Client/Server Protocol" pages (mariadb.com/kb).
//!
//! Every function takes the payload without the 4-byte packet header and returns `None` when
//! the bytes do not hold the layout; none of them panics.

use nom::bytes::complete::take;
use nom::number::complete::{le_u16, le_u24, le_u32, le_u64, le_u8};
use nom::{IResult, Parser};

type Res<'a, T> = IResult<&'a [u8], T, nom::error::Error<&'a [u8]>>;

/// Capability flags ("Capabilities Flags", `CLIENT_*` in `include/mysql_com.h`).
pub(crate) mod cap {
    /// Protocol 4.1: 4-byte capabilities, SQL state in ERR, status and warnings in OK/EOF.
    pub const PROTOCOL_41: u32 = 0x0000_0200;
    /// Compressed protocol after the handshake.
    pub const COMPRESS: u32 = 0x0000_0020;
    /// The client asks to switch to TLS (SSLRequest).
    pub const SSL: u32 = 0x0000_0800;
    /// OK packets (header 0xFE) replace the EOF packets of result sets.
    pub const DEPRECATE_EOF: u32 = 0x0100_0000;
    /// zstd compression after the handshake (MySQL 8.0.18+).
    pub const ZSTD: u32 = 0x0400_0000;
    /// COM_QUERY carries query attributes before the text (MySQL 8.0.23+).
    pub const QUERY_ATTRIBUTES: u32 = 0x0800_0000;
}

/// Server status flags (`SERVER_*` in `include/mysql_com.h`).
pub(crate) mod status {
    /// Another result follows this one (multi-statements, CALL).
    pub const MORE_RESULTS_EXISTS: u16 = 0x0008;
    /// A read-only cursor was opened by COM_STMT_EXECUTE; rows come with COM_STMT_FETCH.
    pub const CURSOR_EXISTS: u16 = 0x0040;
}

/// Largest payload of one physical packet; a payload this long continues in the next packet
/// ("MySQL Packets", "Sending More Than 16Mb").
pub(crate) const MAX_PACKET: u32 = 0x00ff_ffff;

/// A length-encoded integer ("Integer Types", `int<lenenc>`). `0xFB` (NULL in rows) and `0xFF`
/// are not integers.
pub(crate) fn lenenc(i: &[u8]) -> Res<'_, u64> {
    let (i, first) = le_u8(i)?;
    match first {
        0..=0xfa => Ok((i, u64::from(first))),
        0xfc => le_u16(i).map(|(i, v)| (i, u64::from(v))),
        0xfd => le_u24(i).map(|(i, v)| (i, u64::from(v))),
        0xfe => le_u64(i),
        _ => Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::Verify,
        ))),
    }
}

/// The value of a length-encoded integer and how many bytes it took.
pub(crate) fn lenenc_sized(i: &[u8]) -> Option<(u64, usize)> {
    let (rest, v) = lenenc(i).ok()?;
    Some((v, i.len() - rest.len()))
}

fn lenenc_bytes(i: &[u8]) -> Res<'_, &[u8]> {
    let (i, n) = lenenc(i)?;
    take(usize::try_from(n).unwrap_or(usize::MAX))(i)
}

/// OK packet ("OK_Packet"; header 0x00, or 0xFE when it ends a result set under
/// CLIENT_DEPRECATE_EOF).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OkPacket {
    pub affected_rows: u64,
    /// Absent before protocol 4.1.
    pub status: Option<u16>,
}

pub(crate) fn ok(payload: &[u8]) -> Option<OkPacket> {
    let (i, _header) = le_u8::<_, nom::error::Error<_>>(payload).ok()?;
    let (i, affected_rows) = lenenc(i).ok()?;
    let (i, _last_insert_id) = lenenc(i).ok()?;
    let status = le_u16::<_, nom::error::Error<_>>(i).ok().map(|(_, s)| s);
    Some(OkPacket {
        affected_rows,
        status,
    })
}

/// EOF packet ("EOF_Packet"): 0xFE, warnings, status; 1 byte before protocol 4.1. An EOF is
/// told from an OK packet with header 0xFE by its length: an OK has at least 7 bytes.
pub(crate) fn eof_status(payload: &[u8]) -> Option<u16> {
    payload.get(3..5).map(|s| u16::from_le_bytes([s[0], s[1]]))
}

/// Whether a payload of true length `len` starting with `first` is an EOF packet rather than
/// an OK packet with header 0xFE (which is at least 7 bytes long) or a row (at least 9).
pub(crate) fn is_eof(first: Option<u8>, len: u64) -> bool {
    first == Some(0xfe) && len < 7
}

/// Whether the packet ends a result set or a list of column definitions: an EOF, or an OK
/// packet with header 0xFE. A text row cannot start with 0xFE below 16 MiB (that prefix
/// announces a value of at least 2^24 bytes), a binary row starts with 0x00
/// ("Text Resultset", "Binary Protocol Resultset").
pub(crate) fn is_terminator(first: Option<u8>, len: u64) -> bool {
    first == Some(0xfe) && len < u64::from(MAX_PACKET)
}

/// Status flags of a terminator (EOF or OK with header 0xFE).
pub(crate) fn terminator_status(payload: &[u8], len: u64) -> Option<u16> {
    if len < 7 {
        eof_status(payload)
    } else {
        ok(payload).and_then(|o| o.status)
    }
}

/// ERR packet ("ERR_Packet"): 0xFF, error code, then with protocol 4.1 a `#` and a
/// five-character SQL state, then the message. MariaDB sends progress reports as ERR packets
/// with code 0xFFFF ("Progress Reporting"); those are not errors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ErrPacket<'a> {
    pub code: u16,
    pub message: &'a [u8],
}

pub(crate) fn err(payload: &[u8]) -> Option<ErrPacket<'_>> {
    let (i, _header) = le_u8::<_, nom::error::Error<_>>(payload).ok()?;
    let (i, code) = le_u16::<_, nom::error::Error<_>>(i).ok()?;
    let message = match i.first() {
        Some(b'#') => i.get(6..).unwrap_or_default(),
        _ => i,
    };
    Some(ErrPacket { code, message })
}

/// Code of MariaDB's progress report packets.
pub(crate) const PROGRESS_CODE: u16 = 0xffff;

/// What the server's Initial Handshake Packet tells ("Protocol::HandshakeV10").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Greeting {
    pub capabilities: u32,
}

pub(crate) fn greeting(payload: &[u8]) -> Option<Greeting> {
    fn parse(i: &[u8]) -> Res<'_, Greeting> {
        let (i, _version) = nom::combinator::verify(le_u8, |v| *v == 0x0a).parse(i)?;
        let (i, _server_version) = nom::bytes::complete::take_until(&b"\0"[..])(i)?;
        let (i, _nul) = take(1usize)(i)?;
        let (i, _thread_id) = le_u32(i)?;
        let (i, _scramble) = take(9usize)(i)?;
        let (i, low) = le_u16(i)?;
        // Servers before 4.1 may stop here.
        let high = match (|i| -> Res<'_, u16> {
            let (i, _charset) = le_u8(i)?;
            let (i, _status) = le_u16(i)?;
            le_u16(i)
        })(i)
        {
            Ok((_, h)) => h,
            Err(_) => 0,
        };
        Ok((
            i,
            Greeting {
                capabilities: u32::from(low) | u32::from(high) << 16,
            },
        ))
    }
    parse(payload).ok().map(|(_, g)| g)
}

/// Capabilities of the client's HandshakeResponse41 or SSLRequest ("Protocol::SSLRequest",
/// "Protocol::HandshakeResponse"); the 2-byte field of HandshakeResponse320 before 4.1.
pub(crate) fn client_capabilities(payload: &[u8]) -> Option<u32> {
    let (_, low) = le_u16::<_, nom::error::Error<_>>(payload).ok()?;
    if u32::from(low) & cap::PROTOCOL_41 == 0 {
        return Some(u32::from(low));
    }
    le_u32::<_, nom::error::Error<_>>(payload)
        .ok()
        .map(|(_, c)| c)
}

/// COM_STMT_PREPARE_OK ("COM_STMT_PREPARE Response").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PrepareOk {
    pub statement_id: u32,
    pub columns: u16,
    pub params: u16,
    /// False when the server sent no definitions (MySQL's CLIENT_OPTIONAL_RESULTSET_METADATA,
    /// `resultset_metadata` = RESULTSET_METADATA_NONE).
    pub metadata: bool,
}

pub(crate) fn prepare_ok(payload: &[u8]) -> Option<PrepareOk> {
    fn parse(i: &[u8]) -> Res<'_, (u32, u16, u16)> {
        let (i, _ok) = nom::combinator::verify(le_u8, |v| *v == 0).parse(i)?;
        let (i, id) = le_u32(i)?;
        let (i, columns) = le_u16(i)?;
        let (i, params) = le_u16(i)?;
        Ok((i, (id, columns, params)))
    }
    let (_, (statement_id, columns, params)) = parse(payload).ok()?;
    Some(PrepareOk {
        statement_id,
        columns,
        params,
        metadata: payload.get(12) != Some(&0),
    })
}

/// The first packet of a text or binary result set: the column count, and whether column
/// definitions follow. MariaDB's MARIADB_CLIENT_CACHE_METADATA and MySQL's
/// CLIENT_OPTIONAL_RESULTSET_METADATA add one byte after the count (0: no definitions); it is
/// told by the packet's length, so no capability needs to be known.
pub(crate) fn column_count(payload: &[u8], len: u64) -> Option<(u64, bool)> {
    let (count, size) = lenenc_sized(payload)?;
    let metadata = !(len == size as u64 + 1 && payload.get(size) == Some(&0));
    (count > 0).then_some((count, metadata))
}

/// Statement id and flags of COM_STMT_EXECUTE ("COM_STMT_EXECUTE"): the cursor type is in the
/// low bits of the flags.
pub(crate) fn execute_header(payload: &[u8]) -> Option<(u32, u8)> {
    let (i, _cmd) = le_u8::<_, nom::error::Error<_>>(payload).ok()?;
    let (i, id) = le_u32::<_, nom::error::Error<_>>(i).ok()?;
    let flags = i.first().copied().unwrap_or(0);
    Some((id, flags))
}

/// The statement id that follows the command byte (COM_STMT_RESET, COM_STMT_CLOSE,
/// COM_STMT_FETCH, COM_STMT_SEND_LONG_DATA, COM_STMT_BULK_EXECUTE).
pub(crate) fn statement_id(payload: &[u8]) -> Option<u32> {
    payload
        .get(1..5)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// COM_QUERY with CLIENT_QUERY_ATTRIBUTES ("COM_QUERY"): the attributes come before the
/// statement text. Returns where the text starts, or `None` when the attributes do not parse.
pub(crate) fn query_text_offset(body: &[u8]) -> Option<usize> {
    fn parse(i: &[u8]) -> Res<'_, ()> {
        let (i, count) = lenenc(i)?;
        let (mut i, _sets) = lenenc(i)?;
        if count == 0 {
            return Ok((i, ()));
        }
        // Bounded by the bytes: every parameter takes at least its two type bytes.
        let count = usize::try_from(count).unwrap_or(usize::MAX).min(i.len());
        let (rest, bitmap) = take(count.div_ceil(8))(i)?;
        let (rest, bound) = le_u8(rest)?;
        i = rest;
        if bound != 1 {
            return Ok((i, ()));
        }
        let mut types = Vec::with_capacity(count);
        for _ in 0..count {
            let (rest, t) = le_u16(i)?;
            let (rest, _name) = lenenc_bytes(rest)?;
            types.push(t as u8);
            i = rest;
        }
        for (n, t) in types.into_iter().enumerate() {
            if bitmap[n / 8] & (1 << (n % 8)) != 0 {
                continue;
            }
            let (rest, _) = binary_value(i, t)?;
            i = rest;
        }
        Ok((i, ()))
    }
    let (rest, ()) = parse(body).ok()?;
    Some(body.len() - rest.len())
}

/// One value of the binary protocol ("Binary Protocol Value") of column type `t`.
fn binary_value(i: &[u8], t: u8) -> Res<'_, &[u8]> {
    match t {
        0x06 => Ok((i, &i[..0])),              // NULL
        0x01 => take(1usize)(i),               // TINY
        0x02 | 0x0d => take(2usize)(i),        // SHORT, YEAR
        0x03 | 0x09 | 0x04 => take(4usize)(i), // LONG, INT24, FLOAT
        0x05 | 0x08 => take(8usize)(i),        // DOUBLE, LONGLONG
        0x07 | 0x0a | 0x0b | 0x0c => {
            // TIMESTAMP, DATE, TIME, DATETIME: a length byte, then that many bytes.
            let (i, n) = le_u8(i)?;
            take(usize::from(n))(i)
        }
        _ => lenenc_bytes(i), // strings, decimals, blobs, JSON, geometry
    }
}

/// The command byte's name ("Text Protocol", "Prepared Statements", MariaDB's
/// COM_STMT_BULK_EXECUTE); unknown codes are kept as `COM_UNKNOWN_0xNN`.
pub(crate) fn command_name(code: u8) -> std::borrow::Cow<'static, str> {
    let name = match code {
        0x00 => "COM_SLEEP",
        0x01 => "COM_QUIT",
        0x02 => "COM_INIT_DB",
        0x03 => "COM_QUERY",
        0x04 => "COM_FIELD_LIST",
        0x05 => "COM_CREATE_DB",
        0x06 => "COM_DROP_DB",
        0x07 => "COM_REFRESH",
        0x08 => "COM_SHUTDOWN",
        0x09 => "COM_STATISTICS",
        0x0a => "COM_PROCESS_INFO",
        0x0b => "COM_CONNECT",
        0x0c => "COM_PROCESS_KILL",
        0x0d => "COM_DEBUG",
        0x0e => "COM_PING",
        0x0f => "COM_TIME",
        0x10 => "COM_DELAYED_INSERT",
        0x11 => "COM_CHANGE_USER",
        0x12 => "COM_BINLOG_DUMP",
        0x13 => "COM_TABLE_DUMP",
        0x14 => "COM_CONNECT_OUT",
        0x15 => "COM_REGISTER_SLAVE",
        0x16 => "COM_STMT_PREPARE",
        0x17 => "COM_STMT_EXECUTE",
        0x18 => "COM_STMT_SEND_LONG_DATA",
        0x19 => "COM_STMT_CLOSE",
        0x1a => "COM_STMT_RESET",
        0x1b => "COM_SET_OPTION",
        0x1c => "COM_STMT_FETCH",
        0x1d => "COM_DAEMON",
        0x1e => "COM_BINLOG_DUMP_GTID",
        0x1f => "COM_RESET_CONNECTION",
        0x20 => "COM_CLONE",
        0x21 => "COM_SUBSCRIBE_GROUP_REPLICATION_STREAM",
        0xfa => "COM_STMT_BULK_EXECUTE",
        0xfe => "COM_MULTI",
        _ => return format!("COM_UNKNOWN_0x{code:02X}").into(),
    };
    name.into()
}

/// Whether a byte is a command a client sends (the codes above, but not the server-internal
/// COM_SLEEP).
pub(crate) fn is_command(code: u8) -> bool {
    matches!(code, 0x01..=0x21 | 0xfa..=0xfe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenenc_forms() {
        assert_eq!(lenenc_sized(&[0xfa]), Some((250, 1)));
        assert_eq!(lenenc_sized(&[0xfc, 0x10, 0x27]), Some((10_000, 3)));
        assert_eq!(lenenc_sized(&[0xfd, 1, 0, 1]), Some((65_537, 4)));
        assert_eq!(
            lenenc_sized(&[0xfe, 1, 0, 0, 0, 0, 0, 0, 1]).map(|v| v.1),
            Some(9)
        );
        assert_eq!(lenenc_sized(&[0xfb]), None);
        assert_eq!(lenenc_sized(&[0xfc, 1]), None);
    }

    #[test]
    fn ok_err_eof() {
        assert_eq!(
            ok(&[0, 3, 0, 0x0a, 0, 0, 0]),
            Some(OkPacket {
                affected_rows: 3,
                status: Some(0x0a)
            })
        );
        let e = err(b"\xff\x7a\x04#42S02Table 'w.t' doesn't exist").unwrap();
        assert_eq!(e.code, 1146);
        assert_eq!(e.message, b"Table 'w.t' doesn't exist");
        // Before the handshake the SQL state is absent.
        assert_eq!(err(b"\xff\x10\x04Too many").unwrap().message, b"Too many");
        assert!(is_eof(Some(0xfe), 5));
        assert!(!is_eof(Some(0xfe), 7));
        assert_eq!(eof_status(&[0xfe, 0, 0, 0x22, 0]), Some(0x22));
        assert_eq!(terminator_status(&[0xfe, 0, 0, 0x08, 0, 0, 0], 7), Some(8));
    }

    #[test]
    fn column_count_with_and_without_metadata_flag() {
        assert_eq!(column_count(&[2], 1), Some((2, true)));
        assert_eq!(column_count(&[2, 0], 2), Some((2, false)));
        assert_eq!(column_count(&[2, 1], 2), Some((2, true)));
        assert_eq!(column_count(&[0], 1), None);
    }

    #[test]
    fn query_attributes_prefix() {
        assert_eq!(query_text_offset(b"\x00\x01select 1"), Some(2));
        // One bound LONGLONG attribute named "a".
        let mut b = vec![1, 1, 0, 1, 0x08, 0, 1, b'a'];
        b.extend_from_slice(&7u64.to_le_bytes());
        b.extend_from_slice(b"select 1");
        assert_eq!(query_text_offset(&b), Some(b.len() - 8));
        assert_eq!(query_text_offset(&[5, 1, 0]), None);
    }

    #[test]
    fn command_names_are_open() {
        assert_eq!(command_name(0x03), "COM_QUERY");
        assert_eq!(command_name(0x77), "COM_UNKNOWN_0x77");
        assert!(is_command(0x17) && !is_command(0x00) && !is_command(0x40));
    }
}
