//! A protocol buffers writer for the span path: fields appended to a byte buffer as they are
//! known, nested messages length-prefixed once written. The spans of a batch are encoded
//! straight from the records this way, without building the SDK's `SpanData` or the proto
//! structs first (`perf` had those two conversions and prost's size pass at about half of the
//! agent's CPU with spans on).
//!
//! Wire format: "Encoding" in the protocol buffers documentation. Varints are minimal, so
//! the bytes are what any encoder writes for the same message.

/// Wire types.
const VARINT: u32 = 0;
const I64: u32 = 1;
const LEN: u32 = 2;
const I32: u32 = 5;

pub(crate) fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_len(v: u64) -> usize {
    // 1 byte per 7 bits, at least one.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn tag(out: &mut Vec<u8>, field: u32, wire: u32) {
    varint(out, u64::from(field << 3 | wire));
}

/// A `string` or `bytes` field; nothing when empty (proto3 default).
pub(crate) fn bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    if b.is_empty() {
        return;
    }
    tag(out, field, LEN);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// A `string` field made of `parts` written one after the other; nothing when empty.
pub(crate) fn bytes_parts(out: &mut Vec<u8>, field: u32, parts: &[&str]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if len == 0 {
        return;
    }
    tag(out, field, LEN);
    varint(out, len as u64);
    for p in parts {
        out.extend_from_slice(p.as_bytes());
    }
}

/// A varint field (`int64`, `uint32`, `bool`, an enum); nothing when 0.
pub(crate) fn uint(out: &mut Vec<u8>, field: u32, v: u64) {
    if v == 0 {
        return;
    }
    tag(out, field, VARINT);
    varint(out, v);
}

/// A `fixed64` field; nothing when 0.
pub(crate) fn fixed64(out: &mut Vec<u8>, field: u32, v: u64) {
    if v == 0 {
        return;
    }
    tag(out, field, I64);
    out.extend_from_slice(&v.to_le_bytes());
}

/// A `fixed32` field; nothing when 0.
pub(crate) fn fixed32(out: &mut Vec<u8>, field: u32, v: u32) {
    if v == 0 {
        return;
    }
    tag(out, field, I32);
    out.extend_from_slice(&v.to_le_bytes());
}

/// A message field (written even when empty, as a present sub-message is): `body` appends
/// its fields, then the length goes in front of them.
pub(crate) fn message(out: &mut Vec<u8>, field: u32, body: impl FnOnce(&mut Vec<u8>)) {
    message_sized(out, field, 1, body)
}

/// [`message`] with room for a length of `guess` bytes kept in front of the body (2 below
/// 16 KiB, 3 below 2 MiB): a body whose length needs another size is moved once, by the
/// difference.
pub(crate) fn message_sized(
    out: &mut Vec<u8>,
    field: u32,
    guess: usize,
    body: impl FnOnce(&mut Vec<u8>),
) {
    tag(out, field, LEN);
    let at = out.len();
    out.resize(at + guess, 0);
    body(out);
    let len = out.len() - at - guess;
    let need = varint_len(len as u64);
    if need > guess {
        out.resize(out.len() + need - guess, 0);
        out.copy_within(at + guess..at + guess + len, at + need);
    } else if need < guess {
        out.copy_within(at + guess..at + guess + len, at + need);
        out.truncate(at + need + len);
    }
    let (mut v, mut i) = (len as u64, at);
    while v >= 0x80 {
        out[i] = v as u8 | 0x80;
        v >>= 7;
        i += 1;
    }
    out[i] = v as u8;
}

/// The bytes of a `string`/`bytes` field of `len` bytes, tag and length included.
fn len_field(field: u32, len: usize) -> usize {
    varint_len(u64::from(field << 3 | LEN)) + varint_len(len as u64) + len
}

/// A `KeyValue { key = 1; AnyValue value = 2 }` whose value takes `value_len` bytes, up to
/// the value: the lengths are known in advance, so nothing is moved afterwards.
fn kv_head(out: &mut Vec<u8>, field: u32, key: &str, value_len: usize) {
    let key_len = if key.is_empty() {
        0
    } else {
        len_field(1, key.len())
    };
    tag(out, field, LEN);
    varint(out, (key_len + len_field(2, value_len)) as u64);
    bytes(out, 1, key.as_bytes());
    tag(out, 2, LEN);
    varint(out, value_len as u64);
}

/// `KeyValue { key = 1; AnyValue value = 2 }`, the value a string (`AnyValue.string_value =
/// 1`).
pub(crate) fn kv_str(out: &mut Vec<u8>, field: u32, key: &str, value: &str) {
    kv_head(out, field, key, len_field(1, value.len()));
    // An empty string is still a string value: written, not left to the default.
    tag(out, 1, LEN);
    varint(out, value.len() as u64);
    out.extend_from_slice(value.as_bytes());
}

/// The same with an integer (`AnyValue.int_value = 3`, an `int64`).
pub(crate) fn kv_int(out: &mut Vec<u8>, field: u32, key: &str, value: i64) {
    kv_head(out, field, key, 1 + varint_len(value as u64));
    tag(out, 3, VARINT);
    varint(out, value as u64);
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use prost::Message;

    #[test]
    fn varint_lengths() {
        for v in [
            0u64,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = Vec::new();
            varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v), "{v}");
            assert_eq!(out.len(), prost::encoding::encoded_len_varint(v), "{v}");
        }
    }

    /// A length room of any size gives the bytes prost writes, for bodies on both sides of
    /// each varint size.
    #[test]
    fn sized_messages_match_prost() {
        for n in [0, 1, 120, 126, 127, 128, 16_380, 16_381, 16_400, 70_000] {
            let key = "k".repeat(n);
            let want = opentelemetry_proto::tonic::resource::v1::Resource {
                attributes: vec![KeyValue {
                    key: key.clone(),
                    ..KeyValue::default()
                }],
                ..Default::default()
            }
            .encode_to_vec();
            for guess in 1..=3 {
                let mut out = vec![7];
                message_sized(&mut out, 1, guess, |m| bytes(m, 1, key.as_bytes()));
                assert_eq!(out[0], 7);
                assert_eq!(&out[1..], want.as_slice(), "{n} bytes, room {guess}");
            }
        }
    }

    /// Messages of every size around the one-byte length limit decode as prost reads them,
    /// and are the bytes prost writes.
    #[test]
    fn nested_messages_match_prost() {
        for n in [
            0, 1, 100, 120, 125, 126, 127, 128, 200, 16_380, 16_400, 70_000,
        ] {
            let value = "v".repeat(n);
            let mut out = Vec::new();
            kv_str(&mut out, 1, "key", &value);
            kv_int(&mut out, 1, "n", -(n as i64));
            // Two KeyValue fields 1: decode them as the attributes of a Resource (field 1).
            let r = opentelemetry_proto::tonic::resource::v1::Resource::decode(out.as_slice())
                .expect("decodes");
            let want = vec![
                KeyValue {
                    key: "key".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(value.clone())),
                    }),
                    ..KeyValue::default()
                },
                KeyValue {
                    key: "n".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::IntValue(-(n as i64))),
                    }),
                    ..KeyValue::default()
                },
            ];
            assert_eq!(r.attributes, want, "{n}");
            assert_eq!(r.encode_to_vec(), out, "{n}");
        }
    }

    /// Keys empty, short and past each varint size, with integers of every width, are the
    /// bytes prost writes; so are the other scalar fields at field numbers of one and two
    /// tag bytes.
    #[test]
    fn keys_and_scalars_match_prost() {
        use opentelemetry_proto::tonic::trace::v1::Span;
        for n in [0, 1, 127, 128, 16_383, 16_384] {
            let key = "k".repeat(n);
            for value in [0, 1, -1, 127, 128, i64::MAX, i64::MIN] {
                let mut out = Vec::new();
                kv_int(&mut out, 1, &key, value);
                kv_str(&mut out, 1, &key, "");
                let want = opentelemetry_proto::tonic::resource::v1::Resource {
                    attributes: vec![
                        KeyValue {
                            key: key.clone(),
                            value: Some(AnyValue {
                                value: Some(any_value::Value::IntValue(value)),
                            }),
                            ..KeyValue::default()
                        },
                        KeyValue {
                            key: key.clone(),
                            value: Some(AnyValue {
                                value: Some(any_value::Value::StringValue(String::new())),
                            }),
                            ..KeyValue::default()
                        },
                    ],
                    ..Default::default()
                };
                assert_eq!(out, want.encode_to_vec(), "key of {n} bytes, {value}");
            }
        }
        for v in [1u64, 127, 128, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            // In field number order, as prost writes them.
            bytes(&mut out, 1, &[7; 16]);
            bytes_parts(&mut out, 5, &["GET ", "/x"]);
            uint(&mut out, 6, v % 6);
            fixed64(&mut out, 7, v);
            fixed32(&mut out, 16, v as u32);
            let want = Span {
                trace_id: vec![7; 16],
                kind: (v % 6) as i32,
                start_time_unix_nano: v,
                flags: v as u32,
                name: "GET /x".into(),
                ..Span::default()
            };
            assert_eq!(Span::decode(out.as_slice()).expect("decodes"), want, "{v}");
            assert_eq!(out, want.encode_to_vec(), "{v}");
        }
    }
}
