//! The security headers of every console answer: a Content-Security-Policy without
//! `unsafe-inline` (scripts, styles and images only from the gateway itself; framing only by
//! `console.frame_ancestors`), `nosniff`, `Referrer-Policy: same-origin`, and `no-store` on pages
//! (assets set their own caching).

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::api::AppState;

/// The policy, with the configured frame ancestors.
pub fn csp(frame_ancestors: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors {}",
        frame_ancestors.trim()
    )
}

/// Adds the headers to a console answer.
pub async fn secure_headers(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let fa = st.config.console.frame_ancestors.trim().to_string();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&csp(&fa)) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if fa == "'none'" {
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_nothing_inline() {
        let p = csp("'none'");
        assert!(!p.contains("unsafe-inline"));
        assert!(p.contains("script-src 'self'"));
        assert!(p.ends_with("frame-ancestors 'none'"));
        assert!(
            csp(" https://platform.example ").ends_with("frame-ancestors https://platform.example")
        );
    }
}
