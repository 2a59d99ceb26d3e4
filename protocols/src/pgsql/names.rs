//! Prepared statements and portals of one connection (PostgreSQL docs, section 55.2.3
//! "Extended Query"): a Parse names a statement (the empty name is the unnamed statement,
//! replaced by the next unnamed Parse), a Bind makes a portal from a statement, an Execute
//! runs a portal. The pairing remembers which statement text each name stands for, so that an
//! Execute reports the text of the Parse behind it.
//!
//! Both maps are bounded: the oldest names are forgotten first (an Execute of a forgotten
//! statement reports an empty query).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Named prepared statements (Parse, section 55.2.3) remembered per connection; the oldest
/// is forgotten first.
pub const MAX_STATEMENTS: usize = 1024;
/// Named portals (Bind, section 55.2.3) remembered per connection.
pub const MAX_PORTALS: usize = 64;
/// Statement text bytes remembered per connection, all names together (statements and
/// portals each).
pub const MAX_STATEMENT_BYTES: usize = 1 << 20;

/// The text of a prepared statement, as captured.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Stmt {
    pub text: String,
    /// The capture (or the bound on kept bytes) cut the text.
    pub truncated: bool,
}

pub(crate) type StmtRef = Arc<Stmt>;

/// A bounded name -> statement map; the empty name is kept apart (it changes at every unnamed
/// Parse or Bind and is never evicted).
#[derive(Debug)]
struct Bounded {
    unnamed: Option<StmtRef>,
    /// Name -> (generation of its setting, statement).
    named: HashMap<Box<[u8]>, (u64, StmtRef)>,
    /// Settings in order, oldest first, for eviction; an entry whose generation is not the
    /// name's current one is stale and skipped.
    order: VecDeque<(Box<[u8]>, u64)>,
    generation: u64,
    bytes: usize,
    max: usize,
    max_bytes: usize,
}

impl Bounded {
    fn new(max: usize, max_bytes: usize) -> Bounded {
        Bounded {
            unnamed: None,
            named: HashMap::new(),
            order: VecDeque::new(),
            generation: 0,
            bytes: 0,
            max,
            max_bytes,
        }
    }

    fn get(&self, name: &[u8]) -> Option<StmtRef> {
        if name.is_empty() {
            self.unnamed.clone()
        } else {
            self.named.get(name).map(|(_, s)| s.clone())
        }
    }

    /// Sets `name` (to nothing: forgets it); returns what it was.
    fn set(&mut self, name: &[u8], value: Option<StmtRef>) -> Option<StmtRef> {
        if name.is_empty() {
            return std::mem::replace(&mut self.unnamed, value);
        }
        let old = match value {
            Some(v) => {
                self.generation += 1;
                self.bytes += v.text.len() + name.len();
                self.order.push_back((name.into(), self.generation));
                self.named.insert(name.into(), (self.generation, v))
            }
            None => self.named.remove(name),
        };
        if let Some((_, o)) = &old {
            self.bytes = self.bytes.saturating_sub(o.text.len() + name.len());
        }
        self.evict();
        old.map(|(_, s)| s)
    }

    fn evict(&mut self) {
        while self.named.len() > self.max || self.bytes > self.max_bytes {
            let Some((n, g)) = self.order.pop_front() else {
                break;
            };
            if self.named.get(&n).is_some_and(|(cur, _)| *cur == g) {
                if let Some((_, o)) = self.named.remove(&n) {
                    self.bytes = self.bytes.saturating_sub(o.text.len() + n.len());
                }
            }
        }
        if self.order.len() > 2 * self.max + 16 {
            // Drop stale entries; keeps the deque bounded (at most one live entry per name).
            let named = &self.named;
            self.order
                .retain(|(n, g)| named.get(n).is_some_and(|(cur, _)| cur == g));
        }
    }
}

/// Prepared statements and portals of a connection.
#[derive(Debug)]
pub(crate) struct Names {
    statements: Bounded,
    portals: Bounded,
}

impl Default for Names {
    fn default() -> Self {
        Names {
            statements: Bounded::new(MAX_STATEMENTS, MAX_STATEMENT_BYTES),
            portals: Bounded::new(MAX_PORTALS, MAX_STATEMENT_BYTES),
        }
    }
}

impl Names {
    pub(crate) fn statement(&self, name: &[u8]) -> Option<StmtRef> {
        self.statements.get(name)
    }

    /// A Parse (or its undoing): returns the statement the name had.
    pub(crate) fn set_statement(&mut self, name: &[u8], s: Option<StmtRef>) -> Option<StmtRef> {
        self.statements.set(name, s)
    }

    pub(crate) fn portal(&self, name: &[u8]) -> Option<StmtRef> {
        self.portals.get(name)
    }

    pub(crate) fn set_portal(&mut self, name: &[u8], s: Option<StmtRef>) {
        self.portals.set(name, s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stmt(t: &str) -> Option<StmtRef> {
        Some(Arc::new(Stmt {
            text: t.into(),
            truncated: false,
        }))
    }

    #[test]
    fn named_unnamed_and_eviction() {
        let mut n = Names::default();
        assert_eq!(n.set_statement(b"", stmt("select 1")), None);
        assert_eq!(
            n.set_statement(b"", stmt("select 2")).unwrap().text,
            "select 1"
        );
        assert_eq!(n.statement(b"").unwrap().text, "select 2");
        for i in 0..MAX_STATEMENTS + 10 {
            n.set_statement(format!("s{i}").as_bytes(), stmt(&format!("q{i}")));
        }
        assert!(n.statement(b"s0").is_none());
        assert_eq!(n.statement(b"s1030").unwrap().text, "q1030");
        assert_eq!(n.statement(b"").unwrap().text, "select 2");
        // Re-setting one name many times keeps the order deque bounded.
        for _ in 0..10 * MAX_STATEMENTS {
            n.set_statement(b"again", stmt("x"));
        }
        assert!(n.statements.order.len() <= 2 * MAX_STATEMENTS + 16);
        assert_eq!(n.statement(b"again").unwrap().text, "x");
        n.set_portal(b"p", n.statement(b"again"));
        assert_eq!(n.portal(b"p").unwrap().text, "x");
        n.set_portal(b"p", None);
        assert!(n.portal(b"p").is_none());
    }
}
