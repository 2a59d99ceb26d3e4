//! HTTP routes with bounded cardinality, in three steps:
//!
//! 1. the record's `route` already has identifier segments (numbers, UUIDs, hex) as `{id}`
//!    and no query string (`wirelens_protocols::http::route_template`);
//! 2. user-given patterns ([`RoutePatterns`], config `aggregation.routes`) are tried first, in
//!    order: the first that matches is the route, written as the user wrote it;
//! 3. otherwise the route goes through a [`RouteTree`]: one node per path prefix, whose
//!    children are the distinct segments seen after it. When a node would get more than
//!    `segment_values` distinct children, it collapses: from then on every segment at that
//!    place is `{param}`, the values seen before included, and their subtrees are dropped. The
//!    tree itself is bounded ([`MAX_ROUTE_NODES`]); once full, segments that would need a new
//!    node become `{param}` too.
//!
//! Beyla's and Pixie's route heuristics work the same way; the point is that a service with an
//! unbounded set of paths (user names, slugs, search terms in the path) costs a bounded number
//! of series, while a service with a fixed API keeps its routes readable.

use hashbrown::hash_map::EntryRef;
use hashbrown::HashMap;

use crate::text::Key;

/// What a collapsed segment becomes.
pub const PARAM: &str = "{param}";

/// Nodes one [`RouteTree`] may hold (about 100 bytes each, plus the segment text).
pub const MAX_ROUTE_NODES: usize = 16_384;

/// One segment of a user pattern: text to match exactly, or `{name}`, any one segment.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seg {
    Literal(String),
    Any,
}

/// User-given route patterns, such as `/users/{id}/orders`, compiled once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoutePatterns {
    patterns: Vec<(String, Vec<Seg>)>,
}

impl RoutePatterns {
    /// Compiles patterns; on error, the index of the bad one and why.
    ///
    /// A pattern starts with `/`; each `/`-separated segment is either literal text without
    /// braces or a whole `{name}` (a non-empty name), which matches any one segment,
    /// including `{id}` of a templated route.
    pub fn compile(patterns: &[String]) -> Result<RoutePatterns, (usize, String)> {
        let mut out = Vec::with_capacity(patterns.len());
        for (i, p) in patterns.iter().enumerate() {
            if !p.starts_with('/') {
                return Err((i, format!("`{p}` does not start with `/`")));
            }
            let mut segs = Vec::new();
            for s in p.split('/') {
                let placeholder = s.len() > 2 && s.starts_with('{') && s.ends_with('}');
                let inner = if placeholder { &s[1..s.len() - 1] } else { s };
                if inner.contains(['{', '}']) {
                    return Err((
                        i,
                        format!("`{p}`: segment `{s}` must be literal text or a whole `{{name}}`"),
                    ));
                }
                segs.push(if placeholder {
                    Seg::Any
                } else {
                    Seg::Literal(s.to_string())
                });
            }
            out.push((p.clone(), segs));
        }
        Ok(RoutePatterns { patterns: out })
    }

    /// The first pattern `route` matches, as written in the configuration.
    pub fn matching(&self, route: &str) -> Option<&str> {
        self.patterns.iter().find_map(|(text, segs)| {
            let mut parts = route.split('/');
            let all = segs.iter().all(|seg| match (seg, parts.next()) {
                (Seg::Any, Some(s)) => !s.is_empty(),
                (Seg::Literal(l), Some(s)) => l == s,
                (_, None) => false,
            });
            (all && parts.next().is_none()).then_some(text.as_str())
        })
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

#[derive(Debug, Default)]
struct Node {
    children: HashMap<String, Node>,
    /// Set once the node collapsed: every segment here is `{param}` and goes on to this node.
    wild: Option<Box<Node>>,
}

impl Node {
    /// Nodes below this one.
    fn size(&self) -> usize {
        self.children.values().map(|c| 1 + c.size()).sum::<usize>()
            + self.wild.as_ref().map_or(0, |w| 1 + w.size())
    }
}

/// The distinct path segments seen per prefix, for one service's routes.
#[derive(Debug)]
pub struct RouteTree {
    root: Node,
    nodes: usize,
    segment_values: usize,
    /// Nodes that collapsed so far.
    pub collapsed: u64,
}

impl RouteTree {
    /// A tree that collapses a node when it would get more than `segment_values` children.
    pub fn new(segment_values: usize) -> RouteTree {
        RouteTree {
            root: Node::default(),
            nodes: 0,
            segment_values: segment_values.max(1),
            collapsed: 0,
        }
    }

    /// The route with every collapsed segment as `{param}`; learns the segments it has not
    /// seen yet.
    pub fn template(&mut self, route: &str) -> String {
        let mut out = String::with_capacity(route.len());
        self.template_into(route, &mut out);
        out
    }

    /// [`RouteTree::template`], written over `out` (the aggregator reuses one buffer).
    pub fn template_into(&mut self, route: &str, out: &mut String) {
        out.clear();
        let mut node = Some(&mut self.root);
        for (i, seg) in route.split('/').enumerate() {
            if i > 0 {
                out.push('/');
            }
            let Some(n) = node.take() else {
                // The tree is full below here: no node to follow.
                out.push_str(PARAM);
                continue;
            };
            if n.wild.is_none()
                && n.children.len() >= self.segment_values
                && !n.children.contains_key(&Key(seg))
            {
                let freed = n.size();
                n.children.clear();
                n.wild = Some(Box::default());
                self.nodes = self.nodes + 1 - freed;
                self.collapsed += 1;
            }
            if let Some(w) = n.wild.as_deref_mut() {
                out.push_str(PARAM);
                node = Some(w);
                continue;
            }
            match n.children.entry_ref(&Key(seg)) {
                EntryRef::Occupied(child) => {
                    out.push_str(seg);
                    node = Some(child.into_mut());
                }
                EntryRef::Vacant(_) if self.nodes >= MAX_ROUTE_NODES => out.push_str(PARAM),
                EntryRef::Vacant(place) => {
                    self.nodes += 1;
                    out.push_str(seg);
                    node = Some(place.insert(Node::default()));
                }
            }
        }
    }

    /// Nodes held now.
    pub fn nodes(&self) -> usize {
        self.nodes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_segments_in_order() {
        let p = RoutePatterns::compile(&[
            "/users/{id}/orders".to_string(),
            "/users/{name}".to_string(),
            "/".to_string(),
        ])
        .unwrap();
        assert_eq!(p.matching("/users/{id}/orders"), Some("/users/{id}/orders"));
        assert_eq!(
            p.matching("/users/alice/orders"),
            Some("/users/{id}/orders")
        );
        assert_eq!(p.matching("/users/alice"), Some("/users/{name}"));
        assert_eq!(p.matching("/users/"), None);
        assert_eq!(p.matching("/users/alice/orders/1"), None);
        assert_eq!(p.matching("/"), Some("/"));
        assert_eq!(p.matching("/x"), None);
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert_eq!(RoutePatterns::compile(&["users".into()]).unwrap_err().0, 0);
        let e = RoutePatterns::compile(&["/ok".into(), "/a/{b".into()]).unwrap_err();
        assert_eq!(e.0, 1);
        assert!(e.1.contains("`{b`"), "{}", e.1);
        assert!(RoutePatterns::compile(&["/a/x{b}".into()]).is_err());
        assert!(RoutePatterns::compile(&["/a/{}".into()]).is_err());
    }

    #[test]
    fn a_segment_collapses_past_the_limit_and_stays_collapsed() {
        let mut t = RouteTree::new(3);
        for name in ["a", "b", "c", "a"] {
            assert_eq!(t.template(&format!("/u/{name}/x")), format!("/u/{name}/x"));
        }
        assert_eq!(t.template("/u/d/x"), "/u/{param}/x");
        assert_eq!(t.template("/u/a/x"), "/u/{param}/x");
        assert_eq!(t.template("/v/a"), "/v/a");
        assert_eq!(t.collapsed, 1);
        // "", u, {param}, x, v, a (the root is not counted)
        assert_eq!(t.nodes(), 6);
    }

    #[test]
    fn a_reused_buffer_holds_only_the_last_route() {
        let mut t = RouteTree::new(2);
        let mut out = String::from("left over");
        for (route, want) in [
            ("/a/x", "/a/x"),
            ("/a/y", "/a/y"),
            ("/a/z", "/a/{param}"),
            ("/b", "/b"),
        ] {
            t.template_into(route, &mut out);
            assert_eq!(out, want);
        }
    }

    #[test]
    fn a_full_tree_answers_param() {
        let mut t = RouteTree::new(usize::MAX);
        for i in 0..MAX_ROUTE_NODES {
            t.template(&format!("x{i}"));
        }
        assert_eq!(t.nodes(), MAX_ROUTE_NODES);
        assert_eq!(t.template("x1"), "x1");
        assert_eq!(t.template("new/a"), "{param}/{param}");
    }
}
