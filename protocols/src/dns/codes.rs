//! Mnemonics of DNS codes, as the IANA "Domain Name System (DNS) Parameters" registry and
//! the presentation format of RFC 1035 section 5.1 / RFC 3597 section 5 write them. Every
//! code has a name: the registered mnemonic, or the generic form (`TYPE65280`, `CLASS7`,
//! `RCODE12`, `OPCODE3`) for codes without one, so unknown codes are kept, never rejected.

use std::borrow::Cow;

/// RR TYPE / QTYPE values (RFC 1035 section 3.2.2 and 3.2.3, later RFCs as noted).
pub mod rtype {
    pub const A: u16 = 1;
    pub const NS: u16 = 2;
    pub const CNAME: u16 = 5;
    pub const SOA: u16 = 6;
    pub const PTR: u16 = 12;
    pub const MX: u16 = 15;
    pub const TXT: u16 = 16;
    /// RFC 3596.
    pub const AAAA: u16 = 28;
    /// RFC 2782.
    pub const SRV: u16 = 33;
    /// RFC 6891 section 6.1.1: the EDNS pseudo-record.
    pub const OPT: u16 = 41;
    /// RFC 9460.
    pub const HTTPS: u16 = 65;
    pub const ANY: u16 = 255;
}

/// The CLASS values (RFC 1035 section 3.2.4 and 3.2.5).
pub mod class {
    pub const IN: u16 = 1;
    pub const CH: u16 = 3;
    pub const HS: u16 = 4;
    /// RFC 2136 section 1.
    pub const NONE: u16 = 254;
    pub const ANY: u16 = 255;
}

/// OPCODE values (RFC 1035 section 4.1.1, RFC 1996, RFC 2136, RFC 8490).
pub mod opcode {
    pub const QUERY: u8 = 0;
}

/// The mnemonic of an RR TYPE or QTYPE, `TYPE<n>` when it has none (RFC 3597 section 5).
pub fn type_name(t: u16) -> Cow<'static, str> {
    let s = match t {
        1 => "A",
        2 => "NS",
        3 => "MD",
        4 => "MF",
        5 => "CNAME",
        6 => "SOA",
        7 => "MB",
        8 => "MG",
        9 => "MR",
        10 => "NULL",
        11 => "WKS",
        12 => "PTR",
        13 => "HINFO",
        14 => "MINFO",
        15 => "MX",
        16 => "TXT",
        17 => "RP",
        18 => "AFSDB",
        19 => "X25",
        20 => "ISDN",
        21 => "RT",
        22 => "NSAP",
        23 => "NSAP-PTR",
        24 => "SIG",
        25 => "KEY",
        26 => "PX",
        27 => "GPOS",
        28 => "AAAA",
        29 => "LOC",
        30 => "NXT",
        31 => "EID",
        32 => "NIMLOC",
        33 => "SRV",
        34 => "ATMA",
        35 => "NAPTR",
        36 => "KX",
        37 => "CERT",
        38 => "A6",
        39 => "DNAME",
        40 => "SINK",
        41 => "OPT",
        42 => "APL",
        43 => "DS",
        44 => "SSHFP",
        45 => "IPSECKEY",
        46 => "RRSIG",
        47 => "NSEC",
        48 => "DNSKEY",
        49 => "DHCID",
        50 => "NSEC3",
        51 => "NSEC3PARAM",
        52 => "TLSA",
        53 => "SMIMEA",
        55 => "HIP",
        56 => "NINFO",
        57 => "RKEY",
        58 => "TALINK",
        59 => "CDS",
        60 => "CDNSKEY",
        61 => "OPENPGPKEY",
        62 => "CSYNC",
        63 => "ZONEMD",
        64 => "SVCB",
        65 => "HTTPS",
        66 => "DSYNC",
        99 => "SPF",
        104 => "NID",
        105 => "L32",
        106 => "L64",
        107 => "LP",
        108 => "EUI48",
        109 => "EUI64",
        249 => "TKEY",
        250 => "TSIG",
        251 => "IXFR",
        252 => "AXFR",
        253 => "MAILB",
        254 => "MAILA",
        255 => "ANY",
        256 => "URI",
        257 => "CAA",
        258 => "AVC",
        259 => "DOA",
        260 => "AMTRELAY",
        261 => "RESINFO",
        262 => "WALLET",
        32768 => "TA",
        32769 => "DLV",
        _ => return Cow::Owned(format!("TYPE{t}")),
    };
    Cow::Borrowed(s)
}

/// The mnemonic of a CLASS or QCLASS, `CLASS<n>` when it has none (RFC 3597 section 5).
pub fn class_name(c: u16) -> Cow<'static, str> {
    let s = match c {
        class::IN => "IN",
        class::CH => "CH",
        class::HS => "HS",
        class::NONE => "NONE",
        class::ANY => "ANY",
        _ => return Cow::Owned(format!("CLASS{c}")),
    };
    Cow::Borrowed(s)
}

/// The mnemonic of an RCODE: the 4 header bits (RFC 1035 section 4.1.1, RFC 2136 section
/// 2.2), extended to 12 bits by the OPT record (RFC 6891 section 6.1.3); `RCODE<n>` when it
/// has none. Only the codes a message header can carry are named: 16..=22 in the TSIG/TKEY
/// records (BADSIG...) never reach a header, except 16, which in a header means BADVERS.
pub fn rcode_name(r: u16) -> Cow<'static, str> {
    let s = match r {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        // RFC 8490 section 10.2.
        11 => "DSOTYPENI",
        // RFC 6891 section 9.
        16 => "BADVERS",
        // RFC 7873 section 8.
        23 => "BADCOOKIE",
        _ => return Cow::Owned(format!("RCODE{r}")),
    };
    Cow::Borrowed(s)
}

/// The mnemonic of an OPCODE (RFC 1035 section 4.1.1, RFC 1996, RFC 2136, RFC 8490),
/// `OPCODE<n>` when it has none.
pub fn opcode_name(o: u8) -> Cow<'static, str> {
    let s = match o {
        0 => "QUERY",
        1 => "IQUERY",
        2 => "STATUS",
        4 => "NOTIFY",
        5 => "UPDATE",
        6 => "DSO",
        _ => return Cow::Owned(format!("OPCODE{o}")),
    };
    Cow::Borrowed(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_generic_names() {
        assert_eq!(type_name(1), "A");
        assert_eq!(type_name(28), "AAAA");
        assert_eq!(type_name(65), "HTTPS");
        assert_eq!(type_name(64), "SVCB");
        assert_eq!(type_name(257), "CAA");
        assert_eq!(type_name(255), "ANY");
        assert_eq!(type_name(54), "TYPE54");
        assert_eq!(type_name(65535), "TYPE65535");
        assert_eq!(class_name(1), "IN");
        assert_eq!(class_name(3), "CH");
        assert_eq!(class_name(2), "CLASS2");
        assert_eq!(rcode_name(3), "NXDOMAIN");
        assert_eq!(rcode_name(10), "NOTZONE");
        assert_eq!(rcode_name(12), "RCODE12");
        assert_eq!(rcode_name(16), "BADVERS");
        assert_eq!(rcode_name(4095), "RCODE4095");
        assert_eq!(opcode_name(0), "QUERY");
        assert_eq!(opcode_name(5), "UPDATE");
        assert_eq!(opcode_name(3), "OPCODE3");
    }
}
