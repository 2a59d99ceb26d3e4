//! Low-cardinality route templates from request-targets.
//!
//! Metrics and span names need a bounded set of names per service; request-targets are
//! unbounded (ids, query strings). A route replaces every path segment that looks like an
//! identifier with `{id}` and drops the query string, so `/users/42/orders?page=3` becomes
//! `/users/{id}/orders`.

/// The placeholder that replaces identifier segments.
pub const ID: &str = "{id}";

/// The route template of a request-target (RFC 9112 section 3.2).
///
/// - origin-form (`/a/b?q`): the path, without query string or fragment;
/// - absolute-form (`http://host/a/b?q`, sent to proxies, RFC 9112 section 3.2.2): the path
///   part of the URI, `/` when it has none;
/// - asterisk-form (`*`) and authority-form (`host:443`, CONNECT): unchanged.
///
/// Each `/`-separated segment that is all digits, a UUID (8-4-4-4-12 hex digits), or a hex
/// string of at least 8 characters holding at least one decimal digit becomes `{id}`. Empty
/// segments and a trailing slash are kept as sent.
///
/// ```
/// use wirelens_protocols::http::route_template;
/// assert_eq!(route_template("/users/42/orders?page=3"), "/users/{id}/orders");
/// assert_eq!(route_template("/blobs/0af3c9e1d2/raw"), "/blobs/{id}/raw");
/// assert_eq!(route_template("/en/deadbeef"), "/en/deadbeef");
/// ```
pub fn route_template(target: &str) -> String {
    let path = path_of(target);
    // First pass: the template's exact length, and whether any segment is an identifier.
    let mut len = path.len();
    let mut ids = 0usize;
    for segment in segments(path) {
        if is_id(segment) {
            len = len - segment.len() + ID.len();
            ids += 1;
        }
    }
    if ids == 0 {
        // Most targets name a resource, not an instance: the path as it is.
        return path.to_owned();
    }
    // Second pass: copy the runs between identifiers whole.
    let mut out = String::with_capacity(len);
    let mut run = 0;
    let mut at = 0;
    for segment in segments(path) {
        let end = at + segment.len();
        if ids > 0 && is_id(segment) {
            out.push_str(&path[run..at]);
            out.push_str(ID);
            run = end;
            ids -= 1;
        }
        at = end + 1;
    }
    out.push_str(&path[run..]);
    debug_assert_eq!(out.len(), len);
    out
}

/// The `/`-separated segments of a path, as bytes: `/` is ASCII, so a byte split cuts where
/// a character split would, without decoding characters.
fn segments(path: &str) -> impl Iterator<Item = &[u8]> {
    path.as_bytes().split(|b| *b == b'/')
}

/// The path of a request-target: query and fragment cut, scheme and authority of an
/// absolute-form target removed.
fn path_of(target: &str) -> &str {
    // `?` and `#` are ASCII, never part of a multi-byte character: a byte search finds the
    // same boundary a character search would.
    let end = target
        .bytes()
        .position(|b| b == b'?' || b == b'#')
        .unwrap_or(target.len());
    let target = &target[..end];
    if target.starts_with('/') {
        // origin-form, by far the most common: no scheme to strip.
        return target;
    }
    let lower_starts = |p: &str| {
        target
            .get(..p.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(p))
    };
    for scheme in ["http://", "https://"] {
        if lower_starts(scheme) {
            let rest = &target[scheme.len()..];
            return match rest.find('/') {
                Some(slash) => &rest[slash..],
                None => "/",
            };
        }
    }
    target
}

/// Whether a path segment is an identifier (see [`route_template`]): one pass over its bytes,
/// stopping at the first that no identifier holds.
fn is_id(s: &[u8]) -> bool {
    if s.len() == 36 && s[8] == b'-' {
        return is_uuid(s);
    }
    let mut digits = 0usize;
    for b in s {
        if b.is_ascii_digit() {
            digits += 1;
        } else if !b.is_ascii_hexdigit() {
            return false;
        }
    }
    // All digits (and not empty), or hex of at least 8 holding a decimal digit.
    (digits == s.len() && !s.is_empty()) || (s.len() >= 8 && digits > 0)
}

/// RFC 9562 section 4 string form: 8-4-4-4-12 hex digits separated by `-`, any case.
fn is_uuid(s: &[u8]) -> bool {
    s.len() == 36
        && s.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::route_template as t;
    use super::{path_of, ID};

    /// The template built the plain way: segment by segment, each one tested on its own.
    fn reference(target: &str) -> String {
        let is_id = |s: &str| {
            let s = s.as_bytes();
            let uuid = s.len() == 36
                && s.iter().enumerate().all(|(i, b)| match i {
                    8 | 13 | 18 | 23 => *b == b'-',
                    _ => b.is_ascii_hexdigit(),
                });
            (!s.is_empty() && s.iter().all(u8::is_ascii_digit))
                || uuid
                || (s.len() >= 8
                    && s.iter().all(u8::is_ascii_hexdigit)
                    && s.iter().any(u8::is_ascii_digit))
        };
        path_of(target)
            .split('/')
            .map(|s| if is_id(s) { ID } else { s })
            .collect::<Vec<_>>()
            .join("/")
    }

    #[test]
    fn matches_the_plain_construction() {
        let segments = [
            "",
            "0",
            "42",
            "users",
            "v1",
            "abcdef12",
            "abcdef1",
            "abcdefab",
            "ABCDEF0123456789",
            "123e4567-E89B-12d3-a456-426614174000",
            "123e4567-E89B-12d3-a456-42661417400g",
            "123e4567xE89B-12d3-a456-426614174000",
            "0123456789abcdef0123456789abcdef0123",
            "\u{e9}t\u{e9}",
            "12\u{e9}",
        ];
        let suffixes = ["", "/", "?q=1/2", "#x/42", "?"];
        let mut n = 0;
        for a in segments {
            for b in segments {
                for c in segments {
                    for suffix in suffixes {
                        for prefix in ["/", "", "http://h:80/", "HTTPS://h"] {
                            let target = format!("{prefix}{a}/{b}/{c}{suffix}");
                            let got = t(&target);
                            assert_eq!(got, reference(&target), "{target:?}");
                            assert_eq!(got.capacity(), got.len(), "{target:?}");
                            n += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(n, 15 * 15 * 15 * 5 * 4);
    }

    #[test]
    fn identifiers_become_placeholders() {
        assert_eq!(t("/"), "/");
        assert_eq!(t("/users/42"), "/users/{id}");
        assert_eq!(t("/users/42/"), "/users/{id}/");
        assert_eq!(t("/a//7"), "/a//{id}");
        assert_eq!(t("/o/123e4567-E89B-12d3-a456-426614174000/x"), "/o/{id}/x");
        assert_eq!(t("/c/abcdef12"), "/c/{id}");
        assert_eq!(t("/c/abcdef1"), "/c/abcdef1"); // 7 chars: too short
        assert_eq!(t("/c/abcdefab"), "/c/abcdefab"); // no digit: a word
        assert_eq!(t("/v1/items"), "/v1/items");
        assert_eq!(t("/search?q=1"), "/search");
        assert_eq!(t("/doc#frag"), "/doc");
    }

    #[test]
    fn target_forms() {
        assert_eq!(t("*"), "*");
        assert_eq!(t("example.com:443"), "example.com:443");
        assert_eq!(t("http://example.com/u/9?x"), "/u/{id}");
        assert_eq!(t("HTTPS://example.com"), "/");
        assert_eq!(t(""), "");
    }
}
