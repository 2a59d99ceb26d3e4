//! The request fields read beside framing: W3C traceparent and route templates.

use wirelens_protocols::http::{parse_traceparent, route_template};
use wirelens_protocols::TraceContext;

fn tc(trace: &str, span: &str) -> Option<TraceContext> {
    Some(TraceContext {
        trace_id: trace.into(),
        span_id: span.into(),
    })
}

#[test]
fn traceparent_version_00() {
    let t = "4bf92f3577b34da6a3ce929d0e0e4736";
    let s = "00f067aa0ba902b7";
    let p = |v: &str| parse_traceparent(v.as_bytes());
    assert_eq!(p(&format!("00-{t}-{s}-01")), tc(t, s));
    assert_eq!(p(&format!(" 00-{t}-{s}-00\t")), tc(t, s));
    // Version 00 is exactly 55 characters.
    assert_eq!(p(&format!("00-{t}-{s}-01-extra")), None);
    assert_eq!(p(&format!("00-{t}-{s}-0")), None);
    // Lower-case hex only; all-zero ids are invalid; separators are fixed.
    assert_eq!(p(&format!("00-{}-{s}-01", t.to_uppercase())), None);
    assert_eq!(p(&format!("00-{}-{s}-01", "0".repeat(32))), None);
    assert_eq!(p(&format!("00-{t}-{}-01", "0".repeat(16))), None);
    assert_eq!(p(&format!("00_{t}-{s}-01")), None);
    assert_eq!(p(&format!("00-{t}-{s}-0g")), None);
    assert_eq!(p(""), None);
}

#[test]
fn traceparent_later_versions() {
    let t = "4bf92f3577b34da6a3ce929d0e0e4736";
    let s = "00f067aa0ba902b7";
    let p = |v: &str| parse_traceparent(v.as_bytes());
    // W3C Trace Context 3.2.4: a later version may append fields after a dash.
    assert_eq!(p(&format!("cc-{t}-{s}-01-what-the-future-holds")), tc(t, s));
    assert_eq!(p(&format!("cc-{t}-{s}-01")), tc(t, s));
    assert_eq!(p(&format!("cc-{t}-{s}-01x")), None);
    // Version ff is invalid.
    assert_eq!(p(&format!("ff-{t}-{s}-01")), None);
}

#[test]
fn route_templates() {
    assert_eq!(
        route_template("/api/v1/users/12345/orders?page=2"),
        "/api/v1/users/{id}/orders"
    );
    assert_eq!(
        route_template("/o/550e8400-e29b-41d4-a716-446655440000"),
        "/o/{id}"
    );
    assert_eq!(
        route_template("/commit/9fceb02d0ae598e95dc970b74767f19372d61af8"),
        "/commit/{id}"
    );
    assert_eq!(
        route_template("/static/app.3f2a9c1b.js"),
        "/static/app.3f2a9c1b.js"
    );
    assert_eq!(route_template("/accounts/facade00"), "/accounts/{id}");
    assert_eq!(route_template("/accounts/facade"), "/accounts/facade");
    assert_eq!(route_template("/v2"), "/v2");
    assert_eq!(route_template("/2024/"), "/{id}/");
    assert_eq!(
        route_template("http://proxy.example/users/7?x=1"),
        "/users/{id}"
    );
}
