//! Checks on what a plugin returns, before the gateway stores or sends it. A plugin can hand back
//! any strings; only requests that are safe to send pass.

use super::error::PluginError;
use crate::model::PreparedRequest;

/// Headers an authenticator may not add: they belong to the transport or to signing.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
];

/// RFC 9110 `token` (header names, methods).
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Visible ASCII, spaces, tabs and non-ASCII text; no control characters (CR/LF injection).
pub(crate) fn is_header_value(s: &str) -> bool {
    s.chars().all(|c| c == '\t' || !c.is_control())
}

pub(crate) fn check_headers(headers: &[(String, String)]) -> Result<(), PluginError> {
    for (name, value) in headers {
        if !is_token(name) {
            return Err(PluginError::InvalidOutput(format!(
                "invalid header name {name:?}"
            )));
        }
        if !is_header_value(value) {
            return Err(PluginError::InvalidOutput(format!(
                "header {name} has control characters in its value"
            )));
        }
    }
    Ok(())
}

fn size(r: &PreparedRequest) -> usize {
    let pairs = |v: &[(String, String)]| v.iter().map(|(a, b)| a.len() + b.len()).sum::<usize>();
    r.method.len()
        + r.url.len()
        + pairs(&r.query)
        + pairs(&r.headers)
        + r.body.as_ref().map_or(0, String::len)
}

/// Validates a transformer's request: size, method, absolute http(s) url, header names/values.
pub(crate) fn check_request(r: &PreparedRequest, max_bytes: usize) -> Result<(), PluginError> {
    let total = size(r);
    if total > max_bytes {
        return Err(PluginError::OutputTooLarge {
            size: total,
            limit: max_bytes,
        });
    }
    if !is_token(&r.method)
        || r.method.len() > 16
        || r.method.bytes().any(|b| b.is_ascii_lowercase())
    {
        return Err(PluginError::InvalidOutput(format!(
            "invalid method {:?}",
            r.method
        )));
    }
    match url::Url::parse(&r.url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => {}
        Ok(u) => {
            return Err(PluginError::InvalidOutput(format!(
                "url scheme must be http or https, not {:?}",
                u.scheme()
            )));
        }
        Err(e) => {
            return Err(PluginError::InvalidOutput(format!(
                "invalid url {:?}: {e}",
                r.url
            )));
        }
    }
    check_headers(&r.headers)
}

/// Validates what an authenticator adds.
pub(crate) fn check_additions(
    headers: &[(String, String)],
    query: &[(String, String)],
    max_bytes: usize,
) -> Result<(), PluginError> {
    let total: usize = headers
        .iter()
        .chain(query)
        .map(|(a, b)| a.len() + b.len())
        .sum();
    if total > max_bytes {
        return Err(PluginError::OutputTooLarge {
            size: total,
            limit: max_bytes,
        });
    }
    check_headers(headers)?;
    if let Some((name, _)) = headers
        .iter()
        .find(|(n, _)| RESERVED_HEADERS.contains(&n.to_ascii_lowercase().as_str()))
    {
        return Err(PluginError::InvalidOutput(format!(
            "an authenticator may not set the {name} header"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> PreparedRequest {
        PreparedRequest {
            method: "POST".into(),
            url: "https://x.test/a".into(),
            query: vec![],
            headers: vec![("X-A".into(), "1".into())],
            body: Some("{}".into()),
        }
    }

    #[test]
    fn accepts_a_normal_request() {
        check_request(&req(), 1 << 20).unwrap();
    }

    #[test]
    fn refuses_bad_names_values_methods_urls_and_size() {
        let mut r = req();
        r.headers.push(("bad name".into(), "v".into()));
        assert!(matches!(
            check_request(&r, 1 << 20),
            Err(PluginError::InvalidOutput(_))
        ));
        let mut r = req();
        r.headers[0].1 = "a\r\nInjected: 1".into();
        assert!(matches!(
            check_request(&r, 1 << 20),
            Err(PluginError::InvalidOutput(_))
        ));
        let mut r = req();
        r.method = "post".into();
        assert!(matches!(
            check_request(&r, 1 << 20),
            Err(PluginError::InvalidOutput(_))
        ));
        let mut r = req();
        r.url = "file:///etc/passwd".into();
        assert!(matches!(
            check_request(&r, 1 << 20),
            Err(PluginError::InvalidOutput(_))
        ));
        assert!(matches!(
            check_request(&req(), 10),
            Err(PluginError::OutputTooLarge { .. })
        ));
        assert!(matches!(
            check_additions(&[("Host".into(), "evil".into())], &[], 1 << 20),
            Err(PluginError::InvalidOutput(_))
        ));
    }
}
