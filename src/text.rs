//! Equality of the short texts compared for every event and record: path segments, service
//! names, methods, addresses, process names. `==` on `str` calls libc's `memcmp`, whose call
//! costs more than comparing a few bytes; with a dozen comparisons per record it was a third
//! of the aggregate stage (`cargo bench -p wirelens-bench --bench aggregate`).

use std::hash::{Hash, Hasher};

use hashbrown::Equivalent;

/// Whether `a` and `b` hold the same text; up to 16 bytes compared in at most two loads of
/// each, longer texts by `==`.
#[inline]
pub fn same(a: &str, b: &str) -> bool {
    same_bytes(a.as_bytes(), b.as_bytes())
}

/// [`same`] for bytes.
#[inline]
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        0 => true,
        1..=3 => a.iter().zip(b).all(|(x, y)| x == y),
        4..=7 => u32_at(a, 0) == u32_at(b, 0) && u32_at(a, n - 4) == u32_at(b, n - 4),
        8..=16 => u64_at(a, 0) == u64_at(b, 0) && u64_at(a, n - 8) == u64_at(b, n - 8),
        _ => a == b,
    }
}

#[inline(always)]
fn u32_at(s: &[u8], at: usize) -> u32 {
    let mut w = [0; 4];
    w.copy_from_slice(&s[at..at + 4]);
    u32::from_ne_bytes(w)
}

#[inline(always)]
fn u64_at(s: &[u8], at: usize) -> u64 {
    let mut w = [0; 8];
    w.copy_from_slice(&s[at..at + 8]);
    u64::from_ne_bytes(w)
}

/// A `str` looked up in a table keyed by `String`, compared by [`same`]. Hashed as the `str`
/// (as `String` is), and made a `String` when an entry is inserted.
pub struct Key<'a>(pub &'a str);

impl Hash for Key<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl Equivalent<String> for Key<'_> {
    fn equivalent(&self, key: &String) -> bool {
        same(self.0, key)
    }
}

impl From<&Key<'_>> for String {
    fn from(k: &Key<'_>) -> String {
        k.0.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_agrees_with_eq_at_every_length_and_difference() {
        let base: String = (0..40u8).map(|i| (b'a' + i % 26) as char).collect();
        for n in 0..=base.len() {
            let a = &base[..n];
            assert!(same(a, a), "{n}");
            let copy = String::from(a);
            assert!(same(a, &copy), "{n}");
            // One byte changed at every position: first, middle, last.
            for at in 0..n {
                let mut b = a.as_bytes().to_vec();
                b[at] = b'#';
                let b = String::from_utf8(b).unwrap();
                assert_eq!(same(a, &b), a == b, "{n} {at}");
                assert!(!same(a, &b), "{n} {at}");
            }
            // Same prefix, other lengths.
            if n > 0 {
                assert!(!same(a, &base[..n - 1]), "{n}");
            }
        }
    }

    #[test]
    fn keys_find_their_strings() {
        let mut t: hashbrown::HashMap<String, u32> = hashbrown::HashMap::new();
        for w in [
            "",
            "a",
            "api",
            "v1",
            "items",
            "/users/{id}",
            "a-rather-long-segment-name",
        ] {
            *t.entry_ref(&Key(w)).or_default() += 1;
            *t.entry_ref(&Key(w)).or_default() += 1;
        }
        assert_eq!(t.len(), 7);
        assert!(t.values().all(|&v| v == 2));
        assert_eq!(t.get(&Key("items")), Some(&2));
        assert_eq!(t.get(&Key("item")), None);
    }
}
