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
    tag(out, field, LEN);
    // One byte is kept for the length, enough below 128 bytes; a longer body is moved up
    // by the extra bytes its length needs.
    let at = out.len();
    out.push(0);
    body(out);
    let len = out.len() - at - 1;
    let extra = varint_len(len as u64) - 1;
    if extra > 0 {
        out.resize(out.len() + extra, 0);
        out.copy_within(at + 1..at + 1 + len, at + 1 + extra);
    }
    let (mut v, mut i) = (len as u64, at);
    while v >= 0x80 {
        out[i] = v as u8 | 0x80;
        v >>= 7;
        i += 1;
    }
    out[i] = v as u8;
}

/// `KeyValue { key = 1; AnyValue value = 2 }`, the value a string (`AnyValue.string_value =
/// 1`).
pub(crate) fn kv_str(out: &mut Vec<u8>, field: u32, key: &str, value: &str) {
    message(out, field, |m| {
        bytes(m, 1, key.as_bytes());
        message(m, 2, |v| {
            // An empty string is still a string value: written, not left to the default.
            tag(v, 1, LEN);
            varint(v, value.len() as u64);
            v.extend_from_slice(value.as_bytes());
        });
    });
}

/// The same with an integer (`AnyValue.int_value = 3`, an `int64`).
pub(crate) fn kv_int(out: &mut Vec<u8>, field: u32, key: &str, value: i64) {
    message(out, field, |m| {
        bytes(m, 1, key.as_bytes());
        message(m, 2, |v| {
            tag(v, 3, VARINT);
            varint(v, value as u64);
        });
    });
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
}
