//! Domain names on the wire (RFC 1035 sections 3.1 and 4.1.4) and as text.
//!
//! A name is a sequence of labels, each a length octet (0..=63) and that many octets, ended
//! by the zero-length root label or by a compression pointer (two octets `11` + a 14-bit
//! offset from the start of the message) to a prior occurrence of the rest of the name.
//!
//! Reading follows pointers under one rule that both bounds the work and rules out loops:
//! the first pointer must point before itself, and each later pointer before the target of
//! the previous one. Every pointer a compressor writes satisfies it (a pointer refers to a
//! name written earlier, whose own pointers refer to names written earlier still), and the
//! offsets visited strictly decrease, so a name is read in at most one pass over the
//! message. [`MAX_POINTERS`] bounds the jumps on top of that, and the name itself is limited
//! to 255 octets (RFC 1035 section 2.3.4).

use super::parse::DnsError;

/// Longest name on the wire, length octets and the root label included (RFC 1035 section
/// 2.3.4).
pub const MAX_NAME_WIRE: usize = 255;

/// Most compression pointers followed while reading one name. A 255-octet name has at most
/// 127 labels, so a legitimate name never needs more.
pub const MAX_POINTERS: usize = 127;

/// Reads the name at `start` of `msg` as text into `out` (cleared first) and returns the
/// offset just after the name where it starts (after its first pointer, when compressed).
///
/// The text follows RFC 4343 section 2.1 and the zone-file presentation of RFC 1035 section
/// 5.1: labels joined by `.`, no trailing dot (the root name alone is `.`), letters in the
/// case they were sent, and escapes for bytes that would be ambiguous or unprintable:
/// `\.`, `\\` and the zone-file specials `\"`, `\(`, `\)`, `\;`, `\@`, `\$` as a backslash
/// and the byte, every byte outside `!`..=`~` (space included) as `\DDD` in decimal.
///
/// Errors: [`DnsError::Incomplete`] when `msg` ends inside the name (the message may have
/// been cut by the capture), [`DnsError::Invalid`] for a reserved label type (`01`, `10`),
/// a pointer that breaks the rule above, or a name over 255 octets.
pub fn read_name(msg: &[u8], start: usize, out: &mut String) -> Result<usize, DnsError> {
    out.clear();
    let mut pos = start;
    let mut end = None;
    // Pointers must land strictly below this offset.
    let mut limit = usize::MAX;
    let mut pointers = 0;
    let mut wire = 0;
    loop {
        let b = *msg.get(pos).ok_or(DnsError::Incomplete { what: "name" })?;
        match b & 0xc0 {
            0x00 if b == 0 => {
                break;
            }
            0x00 => {
                let len = usize::from(b);
                wire += 1 + len;
                if wire + 1 > MAX_NAME_WIRE {
                    return Err(DnsError::Invalid {
                        what: "name longer than 255 octets",
                        offset: pos,
                    });
                }
                let label = msg
                    .get(pos + 1..pos + 1 + len)
                    .ok_or(DnsError::Incomplete { what: "label" })?;
                if !out.is_empty() {
                    out.push('.');
                }
                escape_label(label, out);
                pos += 1 + len;
            }
            0xc0 => {
                let lo = *msg.get(pos + 1).ok_or(DnsError::Incomplete {
                    what: "compression pointer",
                })?;
                let target = usize::from(b & 0x3f) << 8 | usize::from(lo);
                if target >= limit.min(pos) {
                    return Err(DnsError::Invalid {
                        what: "compression pointer not pointing backwards (loop)",
                        offset: pos,
                    });
                }
                pointers += 1;
                if pointers > MAX_POINTERS {
                    return Err(DnsError::Invalid {
                        what: "too many compression pointers",
                        offset: pos,
                    });
                }
                end.get_or_insert(pos + 2);
                limit = target;
                pos = target;
            }
            _ => {
                // 01: extended label types (RFC 6891 section 5: none in use); 10: reserved.
                return Err(DnsError::Invalid {
                    what: "reserved label type",
                    offset: pos,
                });
            }
        }
    }
    if out.is_empty() {
        out.push('.');
    }
    Ok(end.unwrap_or(pos + 1))
}

/// Skips the name at `start` without following pointers (owner names of resource records,
/// whose text is not needed) and returns the offset after it. Same errors as [`read_name`]
/// except that pointers are not checked.
pub fn skip_name(msg: &[u8], start: usize) -> Result<usize, DnsError> {
    let mut pos = start;
    loop {
        let b = *msg.get(pos).ok_or(DnsError::Incomplete { what: "name" })?;
        match b & 0xc0 {
            0x00 if b == 0 => return Ok(pos + 1),
            0x00 => {
                pos += 1 + usize::from(b);
                if pos - start + 1 > MAX_NAME_WIRE {
                    return Err(DnsError::Invalid {
                        what: "name longer than 255 octets",
                        offset: start,
                    });
                }
            }
            0xc0 => {
                return if pos + 2 <= msg.len() {
                    Ok(pos + 2)
                } else {
                    Err(DnsError::Incomplete {
                        what: "compression pointer",
                    })
                };
            }
            _ => {
                return Err(DnsError::Invalid {
                    what: "reserved label type",
                    offset: pos,
                })
            }
        }
    }
}

/// Appends one label as presentation text (see [`read_name`]).
fn escape_label(label: &[u8], out: &mut String) {
    for &b in label {
        match b {
            b'.' | b'\\' | b'"' | b'(' | b')' | b';' | b'@' | b'$' => {
                out.push('\\');
                out.push(char::from(b));
            }
            b'!'..=b'~' => out.push(char::from(b)),
            _ => {
                out.push('\\');
                out.push(char::from(b'0' + b / 100));
                out.push(char::from(b'0' + b / 10 % 10));
                out.push(char::from(b'0' + b % 10));
            }
        }
    }
}

/// Whether two names as text (from [`read_name`]) are the same name: DNS compares names
/// without regard to ASCII case (RFC 4343 section 3); escapes are digits and punctuation, so
/// comparing the texts without case compares the labels without case.
pub fn same_name(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(msg: &[u8], at: usize) -> Result<(String, usize), DnsError> {
        let mut s = String::new();
        read_name(msg, at, &mut s).map(|end| (s, end))
    }

    #[test]
    fn plain_and_root() {
        let m = b"\x03www\x07example\x04test\x00rest";
        assert_eq!(name(m, 0).unwrap(), ("www.example.test".into(), 18));
        assert_eq!(name(b"\x00", 0).unwrap(), (".".into(), 1));
        assert_eq!(skip_name(m, 0), Ok(18));
    }

    #[test]
    fn compression_pointers() {
        // 0: example.test; 14: www -> 0; 20: a -> 14 (two hops).
        let mut m = b"\x07example\x04test\x00".to_vec();
        m.extend_from_slice(b"\x03www\xc0\x00");
        m.extend_from_slice(b"\x01a\xc0\x0e");
        assert_eq!(name(&m, 14).unwrap(), ("www.example.test".into(), 20));
        assert_eq!(name(&m, 20).unwrap(), ("a.www.example.test".into(), 24));
        assert_eq!(skip_name(&m, 20), Ok(24));
        // A bare pointer.
        m.extend_from_slice(b"\xc0\x14");
        assert_eq!(name(&m, 24).unwrap(), ("a.www.example.test".into(), 26));
    }

    #[test]
    fn loops_and_forward_pointers_are_invalid() {
        // Pointer to itself.
        assert!(matches!(
            name(b"\xc0\x00", 0),
            Err(DnsError::Invalid { .. })
        ));
        // a -> back to the label before the pointer: a, a, a...
        assert!(matches!(
            name(b"\x01a\xc0\x00", 0),
            Err(DnsError::Invalid { .. })
        ));
        // Two names pointing at each other.
        let m = b"\x01a\xc0\x04\x01b\xc0\x00";
        assert!(matches!(name(m, 4), Err(DnsError::Invalid { .. })));
        // Forward pointer.
        assert!(matches!(
            name(b"\xc0\x02\x00", 0),
            Err(DnsError::Invalid { .. })
        ));
    }

    #[test]
    fn reserved_label_types_and_length() {
        assert!(matches!(
            name(b"\x41abc\x00", 0),
            Err(DnsError::Invalid { .. })
        ));
        assert!(matches!(
            name(b"\x80abc\x00", 0),
            Err(DnsError::Invalid { .. })
        ));
        // 4 labels of 63 = 256 octets with length bytes, 257 with the root: too long.
        let mut long = Vec::new();
        for _ in 0..4 {
            long.push(63);
            long.extend_from_slice(&[b'x'; 63]);
        }
        long.push(0);
        assert!(matches!(name(&long, 0), Err(DnsError::Invalid { .. })));
        assert!(matches!(skip_name(&long, 0), Err(DnsError::Invalid { .. })));
        // 3 x 63 + 61: 255 octets exactly.
        let mut ok = long[..3 * 64].to_vec();
        ok.push(61);
        ok.extend_from_slice(&[b'y'; 61]);
        ok.push(0);
        assert_eq!(ok.len(), 255);
        assert_eq!(name(&ok, 0).unwrap().1, 255);
    }

    #[test]
    fn cut_names_are_incomplete() {
        assert!(matches!(
            name(b"\x03ww", 0),
            Err(DnsError::Incomplete { .. })
        ));
        assert!(matches!(
            name(b"\x03www", 0),
            Err(DnsError::Incomplete { .. })
        ));
        assert!(matches!(name(b"\xc0", 0), Err(DnsError::Incomplete { .. })));
        assert!(matches!(
            skip_name(b"\xc0", 0),
            Err(DnsError::Incomplete { .. })
        ));
    }

    #[test]
    fn escapes() {
        // What dig prints for 'we\032ird\.na\255me.test'.
        let m = b"\x0cwe ird.na\xffme\x04test\x00";
        assert_eq!(name(m, 0).unwrap().0, r"we\032ird\.na\255me.test");
        assert_eq!(name(b"\x06a\\b\"@$\x00", 0).unwrap().0, r#"a\\b\"\@\$"#);
        assert_eq!(name(b"\x02\x00\x7f\x00", 0).unwrap().0, r"\000\127");
        assert_eq!(name(b"\x03MiX\x00", 0).unwrap().0, "MiX");
        assert!(same_name("MiX.Test", "mix.TEST"));
        assert!(!same_name("mix.test", "mix.test2"));
    }
}
