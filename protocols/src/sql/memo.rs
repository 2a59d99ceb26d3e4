//! A small per-thread cache of what [`super::describe`] and [`super::obfuscate`] made of a
//! statement text, for the texts an application sends again and again.
//!
//! Drivers that prepare their statements (PostgreSQL's extended protocol, MySQL's
//! `COM_STMT_PREPARE`) send the same text with placeholders for every execution, and so does
//! an ORM's simple query with no literal in it (`BEGIN`, `COMMIT`, `SELECT ... WHERE id = $1`).
//! Lexing such a text again for every exchange was a fifth of the agent's CPU with pgbench
//! `-M prepared` at saturation.
//!
//! Only texts that hold no literal are kept: a text with its values written in (`WHERE id =
//! 42`) is seldom sent twice, and keeping it would only push out the texts that are. Texts
//! longer than [`MAX_TEXT`] are not kept either, so the cache holds at most [`SETS`] x
//! [`WAYS`] entries of bounded size per thread (a few hundred KiB at worst).
//!
//! The cache is set-associative: a text's hash picks a set of [`WAYS`] entries, a hit needs the
//! whole text to be equal (the hash only finds the set), and a new entry replaces the set's
//! entries in turn.

use std::cell::RefCell;
use std::thread::LocalKey;

use super::lex::Dialect;

/// Sets of entries; a power of two.
const SETS: usize = 64;
/// Entries per set.
const WAYS: usize = 4;
/// Longest text kept, in bytes.
const MAX_TEXT: usize = 4096;

struct Entry<V> {
    hash: u64,
    dialect: Dialect,
    text: Box<str>,
    value: V,
}

pub(crate) struct Memo<V> {
    /// `SETS * WAYS` entries, a set's entries next to each other.
    entries: Vec<Option<Entry<V>>>,
    /// Per set, the way the next new entry goes to.
    next: Vec<u8>,
}

impl<V: Clone> Memo<V> {
    pub(crate) fn new() -> Self {
        Memo {
            entries: (0..SETS * WAYS).map(|_| None).collect(),
            next: vec![0; SETS],
        }
    }

    /// The value kept for `text` read as `dialect`.
    pub(crate) fn get(&self, text: &str, dialect: Dialect) -> Option<V> {
        let h = hash(text, dialect);
        let set = set_of(h);
        self.entries[set * WAYS..(set + 1) * WAYS]
            .iter()
            .flatten()
            .find(|e| e.hash == h && e.dialect == dialect && &*e.text == text)
            .map(|e| e.value.clone())
    }

    /// Keeps `value` for `text` (when the text is not too long).
    pub(crate) fn put(&mut self, text: &str, dialect: Dialect, value: V) {
        if text.len() > MAX_TEXT {
            return;
        }
        let h = hash(text, dialect);
        let set = set_of(h);
        let way = usize::from(self.next[set]) % WAYS;
        self.next[set] = ((way + 1) % WAYS) as u8;
        self.entries[set * WAYS + way] = Some(Entry {
            hash: h,
            dialect,
            text: text.into(),
            value,
        });
    }
}

/// What `fresh` makes of `text`, from the thread's `memo` when kept there. `fresh` also says
/// whether the text holds a literal: only texts without one are kept.
pub(crate) fn cached<V: Clone + 'static>(
    memo: &'static LocalKey<RefCell<Memo<V>>>,
    text: &str,
    dialect: Dialect,
    fresh: impl FnOnce() -> (V, bool),
) -> V {
    let cacheable = text.len() <= MAX_TEXT;
    if cacheable {
        let kept = memo
            .try_with(|m| m.try_borrow().ok()?.get(text, dialect))
            .ok()
            .flatten();
        if let Some(v) = kept {
            return v;
        }
    }
    let (value, literals) = fresh();
    if cacheable && !literals {
        let _ = memo.try_with(|m| {
            if let Ok(mut m) = m.try_borrow_mut() {
                m.put(text, dialect, value.clone());
            }
        });
    }
    value
}

fn set_of(h: u64) -> usize {
    // The top bits: the multiplications below mix upwards.
    (h >> (64 - SETS.trailing_zeros())) as usize
}

/// A fast non-cryptographic hash of the text, eight bytes at a time. Colliding texts only
/// share a set: a hit compares the text itself.
fn hash(text: &str, dialect: Dialect) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let step = |h: u64, w: u64| (h.rotate_left(5) ^ w).wrapping_mul(K);
    let b = text.as_bytes();
    let mut h = step(dialect as u64 + 1, b.len() as u64);
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = step(h, u64::from_le_bytes(w));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = step(h, u64::from_le_bytes(w));
    }
    // Final mix so that the top bits depend on every input bit.
    h ^= h >> 29;
    h = h.wrapping_mul(K);
    h ^ (h >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_was_put_and_only_that() {
        let mut m: Memo<u32> = Memo::new();
        assert_eq!(m.get("SELECT 1", Dialect::Mysql), None);
        m.put("SELECT a FROM t WHERE id = ?", Dialect::Mysql, 7);
        assert_eq!(
            m.get("SELECT a FROM t WHERE id = ?", Dialect::Mysql),
            Some(7)
        );
        // Another dialect reads strings differently: its own entry.
        assert_eq!(
            m.get("SELECT a FROM t WHERE id = ?", Dialect::Postgres),
            None
        );
        assert_eq!(m.get("SELECT a FROM t WHERE id = ? ", Dialect::Mysql), None);
        let long = "x".repeat(MAX_TEXT + 1);
        m.put(&long, Dialect::Mysql, 1);
        assert_eq!(m.get(&long, Dialect::Mysql), None);
    }

    #[test]
    fn holds_at_most_its_capacity_and_stays_correct_under_churn() {
        let mut m: Memo<usize> = Memo::new();
        let texts: Vec<String> = (0..10 * SETS * WAYS)
            .map(|i| format!("SELECT c{i} FROM t WHERE id = $1"))
            .collect();
        for (i, t) in texts.iter().enumerate() {
            m.put(t, Dialect::Postgres, i);
        }
        let mut kept = 0;
        for (i, t) in texts.iter().enumerate() {
            if let Some(v) = m.get(t, Dialect::Postgres) {
                assert_eq!(v, i, "{t}");
                kept += 1;
            }
        }
        assert!(kept <= SETS * WAYS, "{kept}");
        // The most recent entries of a well-spread hash fill most of the cache.
        assert!(kept >= SETS * WAYS / 2, "{kept}");
        // The last text put is always found.
        let last = texts.len() - 1;
        assert_eq!(m.get(&texts[last], Dialect::Postgres), Some(last));
    }
}
