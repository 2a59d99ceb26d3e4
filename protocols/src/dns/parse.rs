//! One DNS message (RFC 1035 section 4.1): the header, the question, and a walk over the
//! resource records to find the EDNS OPT pseudo-record (RFC 6891 section 6.1).
//!
//! The parser reads a captured prefix of a message as far as it goes: a message cut by the
//! capture (`cut`) still yields its header, and its question and OPT record when they were
//! captured. Only what the exchange needs is decoded; record data is skipped by its length.

use nom::number::streaming::{be_u16, be_u32};
use nom::IResult;

use super::codes::{class, opcode, rtype};
use super::names::{read_name, skip_name};

/// Why bytes are not a DNS message (or not yet one): "incomplete" is kept apart from
/// "invalid" (STYLE.md point 9).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// The bytes end before the part named.
    #[error("message ends inside the {what}")]
    Incomplete { what: &'static str },
    /// The bytes cannot be the part of a message named.
    #[error("invalid DNS message: {what} at offset {offset}")]
    Invalid { what: &'static str, offset: usize },
}

/// Length of the fixed header (RFC 1035 section 4.1.1).
pub const HEADER_LEN: usize = 12;

/// The fixed header (RFC 1035 section 4.1.1, the AD and CD bits of RFC 4035 section 3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub id: u16,
    /// QR, OPCODE, AA, TC, RD, RA, Z, AD, CD, RCODE.
    pub flags: u16,
    pub qdcount: u16,
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
}

impl Header {
    /// QR: the message is a response.
    pub fn is_response(&self) -> bool {
        self.flags & 0x8000 != 0
    }

    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0xf) as u8
    }

    /// TC: the message was truncated to fit the transport (RFC 1035 section 4.1.1, RFC 2181
    /// section 9).
    pub fn tc(&self) -> bool {
        self.flags & 0x0200 != 0
    }

    /// The Z bit, which must be zero (RFC 1035 section 4.1.1; AD and CD took the other two).
    pub fn z(&self) -> bool {
        self.flags & 0x0040 != 0
    }

    /// The low four bits of the RCODE (RFC 1035 section 4.1.1).
    pub fn rcode(&self) -> u16 {
        self.flags & 0xf
    }
}

fn header(i: &[u8]) -> IResult<&[u8], Header> {
    let (i, id) = be_u16(i)?;
    let (i, flags) = be_u16(i)?;
    let (i, qdcount) = be_u16(i)?;
    let (i, ancount) = be_u16(i)?;
    let (i, nscount) = be_u16(i)?;
    let (i, arcount) = be_u16(i)?;
    Ok((
        i,
        Header {
            id,
            flags,
            qdcount,
            ancount,
            nscount,
            arcount,
        },
    ))
}

/// Reads the header at the start of `msg`.
pub fn parse_header(msg: &[u8]) -> Result<Header, DnsError> {
    header(msg)
        .map(|(_, h)| h)
        .map_err(|_| DnsError::Incomplete { what: "header" })
}

/// The first entry of the question section (RFC 1035 section 4.1.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Question {
    /// QNAME as text ([`read_name`]).
    pub name: String,
    pub qtype: u16,
    pub qclass: u16,
}

/// What the message says about its question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuestionState {
    Known(Question),
    /// QDCOUNT is 0 (e.g. an RFC 7873 section 5.4 cookie-only query, or an error response
    /// that does not repeat the question).
    Absent,
    /// The capture ended before the question did.
    Cut,
}

/// The EDNS OPT pseudo-record (RFC 6891 section 6.1.3): its CLASS and TTL fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opt {
    /// Requestor's UDP payload size.
    pub udp_size: u16,
    /// The upper 8 bits of the 12-bit RCODE.
    pub ext_rcode: u8,
    pub version: u8,
    /// DO and the other flag bits.
    pub flags: u16,
}

/// How far the resource records could be walked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Records {
    /// Every record was walked (or none had to be: queries are not walked).
    Read,
    /// The capture ended inside the records.
    Cut,
    /// The records do not fit the message (a record runs past its end, a bad owner name).
    Malformed,
}

/// What the parser takes from one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub header: Header,
    pub question: QuestionState,
    /// The OPT record of the additional section, when one was read. Responses only.
    pub opt: Option<Opt>,
    pub records: Records,
}

impl Message {
    /// The full RCODE: the header's four bits, extended by the OPT record when there is one
    /// (RFC 6891 section 6.1.3).
    pub fn rcode(&self) -> u16 {
        let ext = self.opt.map_or(0, |o| u16::from(o.ext_rcode));
        ext << 4 | self.header.rcode()
    }
}

/// Parses a message, or its captured prefix when `cut` (the capture ended before the
/// message did).
///
/// - Header (12 octets): required; [`DnsError::Incomplete`] without it.
/// - Question: the first entry is decoded, any further ones (QDCOUNT > 1, which no server
///   accepts in practice) skipped. A question running past the end of a whole message, or
///   with an invalid name, makes the message [`DnsError::Invalid`]; in a cut message it is
///   [`QuestionState::Cut`].
/// - Records of responses: walked over ANCOUNT + NSCOUNT + ARCOUNT entries to find the
///   first OPT record of the additional section (a second one would make the message a
///   FORMERR, RFC 6891 section 6.1.1, and is ignored here). Queries are not walked.
pub fn parse_message(msg: &[u8], cut: bool) -> Result<Message, DnsError> {
    let (_, header) = header(msg).map_err(|_| {
        if cut {
            DnsError::Incomplete { what: "header" }
        } else {
            DnsError::Invalid {
                what: "message shorter than its header",
                offset: 0,
            }
        }
    })?;
    let mut m = Message {
        header,
        question: QuestionState::Absent,
        opt: None,
        records: Records::Read,
    };
    let mut pos = HEADER_LEN;
    // Each entry consumes at least 5 octets, so the loops are bounded by the message length.
    for n in 0..header.qdcount {
        let got = if n == 0 {
            let mut name = String::new();
            read_name(msg, pos, &mut name).and_then(|end| {
                let (qtype, qclass) = type_class(msg, end)?;
                m.question = QuestionState::Known(Question {
                    name,
                    qtype,
                    qclass,
                });
                Ok(end + 4)
            })
        } else {
            skip_name(msg, pos).and_then(|end| type_class(msg, end).map(|_| end + 4))
        };
        match got {
            Ok(end) => pos = end,
            Err(DnsError::Incomplete { .. }) if cut => {
                if n == 0 {
                    m.question = QuestionState::Cut;
                }
                m.records = Records::Cut;
                return Ok(m);
            }
            Err(DnsError::Incomplete { .. }) => {
                return Err(DnsError::Invalid {
                    what: "question runs past the end of the message",
                    offset: pos,
                })
            }
            Err(e) => return Err(e),
        }
    }
    if header.is_response() && header.arcount > 0 {
        m.records = walk_records(msg, pos, &header, &mut m.opt, cut);
    }
    Ok(m)
}

/// QTYPE and QCLASS (or TYPE and CLASS) at `at`.
fn type_class(msg: &[u8], at: usize) -> Result<(u16, u16), DnsError> {
    fn fields(i: &[u8]) -> IResult<&[u8], (u16, u16)> {
        let (i, t) = be_u16(i)?;
        let (i, c) = be_u16(i)?;
        Ok((i, (t, c)))
    }
    fields(msg.get(at..).unwrap_or_default())
        .map(|(_, tc)| tc)
        .map_err(|_| DnsError::Incomplete {
            what: "type and class",
        })
}

/// TYPE, CLASS, TTL and RDLENGTH of a resource record (RFC 1035 section 4.1.3).
fn rr_fixed(i: &[u8]) -> IResult<&[u8], (u16, u16, u32, u16)> {
    let (i, t) = be_u16(i)?;
    let (i, c) = be_u16(i)?;
    let (i, ttl) = be_u32(i)?;
    let (i, len) = be_u16(i)?;
    Ok((i, (t, c, ttl, len)))
}

/// Walks the answer, authority and additional records from `pos` (RFC 1035 section 4.1.3)
/// and keeps the first OPT record of the additional section.
fn walk_records(
    msg: &[u8],
    mut pos: usize,
    h: &Header,
    opt: &mut Option<Opt>,
    cut: bool,
) -> Records {
    let before_additional = u32::from(h.ancount) + u32::from(h.nscount);
    let total = before_additional + u32::from(h.arcount);
    // Each record consumes at least 11 octets: bounded by the message length.
    for n in 0..total {
        let rr = skip_name(msg, pos).and_then(|end| {
            rr_fixed(msg.get(end..).unwrap_or_default())
                .map(|(_, f)| (end, f))
                .map_err(|_| DnsError::Incomplete {
                    what: "record header",
                })
        });
        let (end, (t, c, ttl, rdlen)) = match rr {
            Ok(x) => x,
            Err(DnsError::Incomplete { .. }) if cut => return Records::Cut,
            Err(_) => return Records::Malformed,
        };
        if n >= before_additional && t == rtype::OPT && opt.is_none() && msg[pos] == 0 {
            *opt = Some(Opt {
                udp_size: c,
                ext_rcode: (ttl >> 24) as u8,
                version: (ttl >> 16) as u8,
                flags: ttl as u16,
            });
        }
        pos = end + 10 + usize::from(rdlen);
        if pos > msg.len() {
            return if cut {
                Records::Cut
            } else {
                Records::Malformed
            };
        }
    }
    Records::Read
}

/// Whether bytes at a stream position can be the start of a DNS-over-TCP message (the
/// two-octet length of RFC 1035 section 4.2.2, then a header and a question), used to find
/// the next message after the boundary was lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// A plausible message start.
    Yes,
    /// Not a message start.
    No,
    /// More bytes are needed to decide.
    NeedMore,
}

/// Largest prefix [`plausible_start`] ever needs: length, header, a 255-octet name, QTYPE and
/// QCLASS.
pub const START_WINDOW: usize = 2 + HEADER_LEN + 255 + 4;

/// Decides whether `b` starts a DNS-over-TCP message sent by a client (`response` false) or
/// a server. The test is stricter than what the parser accepts, because it runs on bytes
/// that are most likely not a message start: the length covers at least a header and a
/// root-name question; QR matches the direction; OPCODE is one in use (QUERY, IQUERY,
/// STATUS, NOTIFY, UPDATE, DSO) and Z is 0; exactly one question, whose name is not
/// compressed (nothing precedes it to point to) and fits inside the length, with a class in
/// use (IN, CH, HS, NONE, ANY); a standard query carries no answer or authority records.
pub fn plausible_start(b: &[u8], response: bool) -> Start {
    let Some(l) = b.get(..2) else {
        return Start::NeedMore;
    };
    let len = usize::from(u16::from_be_bytes([l[0], l[1]]));
    if len < HEADER_LEN + 5 {
        return Start::No;
    }
    let msg = &b[2..b.len().min(2 + len)];
    let Ok(h) = parse_header(msg) else {
        return Start::NeedMore;
    };
    if h.is_response() != response
        || !matches!(h.opcode(), 0 | 1 | 2 | 4 | 5 | 6)
        || h.z()
        || h.qdcount != 1
        || (!response && h.opcode() == opcode::QUERY && (h.ancount != 0 || h.nscount != 0))
    {
        return Start::No;
    }
    let whole = msg.len() == len;
    let mut pos = HEADER_LEN;
    loop {
        let Some(&lb) = msg.get(pos) else {
            return if whole { Start::No } else { Start::NeedMore };
        };
        if lb == 0 {
            break;
        }
        if lb > 63 || pos - HEADER_LEN + 1 + usize::from(lb) + 1 > 255 {
            return Start::No;
        }
        pos += 1 + usize::from(lb);
    }
    match type_class(msg, pos + 1) {
        Ok((_, class::IN | class::CH | class::HS | class::NONE | class::ANY)) => Start::Yes,
        Ok(_) => Start::No,
        Err(_) if whole => Start::No,
        Err(_) => Start::NeedMore,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A query for `name` (dotted, no escapes) of type `t`, class IN, with `opt` adding an
    /// EDNS OPT record.
    pub(crate) fn query(id: u16, name: &str, t: u16, opt: bool) -> Vec<u8> {
        let mut m = id.to_be_bytes().to_vec();
        m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(opt)]);
        encode_name(name, &mut m);
        m.extend_from_slice(&t.to_be_bytes());
        m.extend_from_slice(&class::IN.to_be_bytes());
        if opt {
            m.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
        }
        m
    }

    pub(crate) fn encode_name(name: &str, m: &mut Vec<u8>) {
        for label in name.split('.').filter(|l| !l.is_empty()) {
            m.push(label.len() as u8);
            m.extend_from_slice(label.as_bytes());
        }
        m.push(0);
    }

    /// The response to `q` with rcode `rcode` (12 bits: the upper 8 go into an OPT record,
    /// added when `opt`), `answers` A records pointing at the question name.
    pub(crate) fn response(q: &[u8], rcode: u16, answers: u16, opt: bool) -> Vec<u8> {
        let qend = skip_name(q, HEADER_LEN).unwrap() + 4;
        let mut m = q[..qend].to_vec();
        m[2] = 0x81;
        m[3] = 0x80 | (rcode & 0xf) as u8;
        m[6..8].copy_from_slice(&answers.to_be_bytes());
        m[10..12].copy_from_slice(&u16::from(opt).to_be_bytes());
        for i in 0..answers {
            m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0]);
            m.push(i as u8);
        }
        if opt {
            m.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, (rcode >> 4) as u8, 0, 0, 0, 0, 0]);
        }
        m
    }

    #[test]
    fn query_and_response() {
        let q = query(0x1234, "www.example.test", 28, true);
        let m = parse_message(&q, false).unwrap();
        assert_eq!(m.header.id, 0x1234);
        assert!(!m.header.is_response());
        assert_eq!(
            m.question,
            QuestionState::Known(Question {
                name: "www.example.test".into(),
                qtype: 28,
                qclass: 1
            })
        );
        assert_eq!(m.opt, None, "queries are not walked");
        let r = response(&q, 0, 2, true);
        let m = parse_message(&r, false).unwrap();
        assert!(m.header.is_response());
        assert_eq!(m.header.ancount, 2);
        assert_eq!(m.records, Records::Read);
        assert_eq!(m.opt.map(|o| o.udp_size), Some(1232));
        assert_eq!(m.rcode(), 0);
    }

    #[test]
    fn extended_rcode_from_opt() {
        let q = query(1, "a.test", 1, true);
        // BADVERS = 16: header 0, OPT extended rcode 1.
        let r = response(&q, 16, 0, true);
        assert_eq!(r[3] & 0xf, 0);
        assert_eq!(parse_message(&r, false).unwrap().rcode(), 16);
        // Without OPT the header's four bits are all there is.
        let r = response(&q, 3, 0, false);
        assert_eq!(parse_message(&r, false).unwrap().rcode(), 3);
        // An OPT record in the answer section is not the EDNS one.
        let mut r = response(&q, 0, 0, false);
        r[7] = 1;
        r[11] = 1;
        r.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0x01, 0, 0, 0, 0, 0]);
        r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 1]);
        let m = parse_message(&r, false).unwrap();
        assert_eq!(m.records, Records::Read);
        assert_eq!(m.opt, None);
        assert_eq!(m.rcode(), 0);
    }

    #[test]
    fn cut_messages_keep_what_was_captured() {
        let q = query(7, "host.test", 1, true);
        let r = response(&q, 3, 1, true);
        assert!(matches!(
            parse_message(&r[..11], true),
            Err(DnsError::Incomplete { .. })
        ));
        assert!(matches!(
            parse_message(&r[..11], false),
            Err(DnsError::Invalid { .. })
        ));
        let m = parse_message(&r[..15], true).unwrap();
        assert_eq!(m.question, QuestionState::Cut);
        assert_eq!(m.header.ancount, 1);
        let m = parse_message(&r[..r.len() - 3], true).unwrap();
        assert!(matches!(m.question, QuestionState::Known(_)));
        assert_eq!(m.records, Records::Cut);
        assert_eq!(m.opt, None);
        assert_eq!(m.rcode(), 3);
        // The same bytes as a whole message: the records do not fit.
        let m = parse_message(&r[..r.len() - 3], false).unwrap();
        assert_eq!(m.records, Records::Malformed);
        // A whole message whose question runs past its end is invalid.
        assert!(matches!(
            parse_message(&q[..16], false),
            Err(DnsError::Invalid { .. })
        ));
    }

    #[test]
    fn no_question_and_several() {
        let mut m = vec![0, 9, 0x81, 0x85, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            parse_message(&m, false).unwrap().question,
            QuestionState::Absent
        );
        m[5] = 2;
        encode_name("a.test", &mut m);
        m.extend_from_slice(&[0, 1, 0, 1]);
        m.extend_from_slice(&[0xc0, 12, 0, 28, 0, 1]);
        let got = parse_message(&m, false).unwrap();
        assert!(
            matches!(got.question, QuestionState::Known(ref q) if q.name == "a.test" && q.qtype == 1)
        );
        m[5] = 3;
        assert!(parse_message(&m, false).is_err());
    }

    #[test]
    fn plausible_starts() {
        let q = query(1, "host.test", 1, true);
        let mut t = (q.len() as u16).to_be_bytes().to_vec();
        t.extend_from_slice(&q);
        assert_eq!(plausible_start(&t, false), Start::Yes);
        assert_eq!(plausible_start(&t, true), Start::No);
        for n in 0..16 {
            assert_eq!(plausible_start(&t[..n], false), Start::NeedMore, "{n}");
        }
        // Header and question are enough; a prefix ending inside the question is not.
        assert_eq!(plausible_start(&t[..t.len() - 11], false), Start::Yes);
        assert_eq!(plausible_start(&t[..t.len() - 12], false), Start::NeedMore);
        assert_eq!(plausible_start(&t[1..], false), Start::No);
        let r = response(&q, 0, 1, true);
        let mut t = (r.len() as u16).to_be_bytes().to_vec();
        t.extend_from_slice(&r);
        assert_eq!(plausible_start(&t, true), Start::Yes);
        // A compressed question name is not a message start.
        let mut c = t.clone();
        c[14] = 0xc0;
        assert_eq!(plausible_start(&c, true), Start::No);
    }
}
