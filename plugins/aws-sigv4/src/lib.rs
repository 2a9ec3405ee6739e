//! `aws-sigv4`: an authenticator that signs each attempt with AWS Signature Version 4
//! (`Authorization: AWS4-HMAC-SHA256 ...`), for API Gateway endpoints with IAM auth, Lambda
//! function URLs, SNS/SQS-style APIs and anything else that checks SigV4.
//!
//! Config: `{"region": "eu-west-1", "service": "execute-api", "access_key_id": "AKIA..."}` (all
//! three required). Secrets: `aws_secret_access_key` (required) and `aws_session_token`
//! (optional, sent as `X-Amz-Security-Token`).
//!
//! Signed: the method, the path, the query, and the headers `host`, `x-amz-content-sha256` (the
//! SHA-256 of the body, computed here) and `x-amz-date` (the attempt's `now`). The signing key
//! chain (kDate, kRegion, kService, kSigning) is derived in the host with
//! `secrets.derive-hmac-sha256`: no key byte enters the plugin. The session token is not part of
//! the signature (the plugin cannot read it; AWS calls this "session token excluded").

use gateway_sdk::serde_json::Value;
use gateway_sdk::{Additions, Attempt, Authenticator, Error, Request, Result, config, encoding, secrets};
use sha2::{Digest, Sha256};

pub struct AwsSigV4;

impl Authenticator for AwsSigV4 {
    fn authenticate(request: &Request, attempt: &Attempt) -> Result<Additions> {
        sign(request, attempt, &config::get_json())
    }
}

gateway_sdk::authenticator!(AwsSigV4);

/// The additions for one attempt (unit-tested natively with `secrets::testing`).
pub fn sign(request: &Request, attempt: &Attempt, config: &Value) -> Result<Additions> {
    let field = |key: &str| -> Result<String> {
        match config.get(key) {
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
            _ => Err(Error::invalid_config(format!("`{key}` (a non-empty string) is required"))),
        }
    };
    let (region, service, access_key_id) = (field("region")?, field("service")?, field("access_key_id")?);
    let secret = secrets::require("aws_secret_access_key")?;
    let url = Url::parse(&request.url)?;

    let amz_date = amz_date(attempt.now_ms);
    let date = &amz_date[..8];
    let body_hash = hex_sha256(request.body.as_deref().unwrap_or("").as_bytes());
    let mut query: Vec<(String, String)> = url.query.iter().chain(&request.query).cloned().collect();
    query.sort();
    let canonical_query = query
        .iter()
        .map(|(k, v)| format!("{}={}", uri_encode(k, true), uri_encode(v, true)))
        .collect::<Vec<_>>()
        .join("&");
    // S3 signs the path as sent; every other service encodes it once more.
    let path = if service == "s3" { url.path.clone() } else { uri_encode(&url.path, false) };
    let signed_headers = "host;x-amz-content-sha256;x-amz-date";
    let canonical_request = format!(
        "{method}\n{path}\n{canonical_query}\nhost:{host}\nx-amz-content-sha256:{body_hash}\nx-amz-date:{amz_date}\n\n{signed_headers}\n{body_hash}",
        method = request.method.to_ascii_uppercase(),
        host = url.host,
    );
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let string_to_sign = format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", hex_sha256(canonical_request.as_bytes()));

    let k_date = secret.derive_hmac_sha256(date.as_bytes(), "AWS4")?;
    let k_region = k_date.derive_hmac_sha256(region.as_bytes(), "")?;
    let k_service = k_region.derive_hmac_sha256(service.as_bytes(), "")?;
    let k_signing = k_service.derive_hmac_sha256(b"aws4_request", "")?;
    let signature = encoding::hex(&k_signing.hmac_sha256(string_to_sign.as_bytes())?);

    if let Some(token) = secrets::open("aws_session_token") {
        token.place_in_header("X-Amz-Security-Token", "")?;
    }
    Ok(Additions::new().header("X-Amz-Date", amz_date.clone()).header("X-Amz-Content-Sha256", body_hash).header(
        "Authorization",
        format!(
            "AWS4-HMAC-SHA256 Credential={access_key_id}/{scope}, SignedHeaders={signed_headers}, Signature={signature}"
        ),
    ))
}

fn hex_sha256(data: &[u8]) -> String {
    encoding::hex(&Sha256::digest(data))
}

/// SigV4's URI encoding: every byte but `A-Z a-z 0-9 - _ . ~` as `%XX` (and `/` too unless
/// `slash` is false, for paths).
fn uri_encode(s: &str, slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b'/' if !slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `YYYYMMDDTHHMMSSZ` (UTC) of a Unix time in milliseconds.
fn amz_date(now_ms: i64) -> String {
    let t = gateway_sdk::time::utc(now_ms);
    format!("{:04}{:02}{:02}T{:02}{:02}{:02}Z", t.year, t.month, t.day, t.hour, t.minute, t.second)
}

/// The parts of an absolute http(s) URL SigV4 signs.
struct Url {
    /// `host` or `host:port` (a default port dropped), as the Host header carries it.
    host: String,
    /// The path as sent (`/` when empty).
    path: String,
    /// Query parameters, percent-decoded.
    query: Vec<(String, String)>,
}

impl Url {
    fn parse(url: &str) -> Result<Url> {
        let bad = || Error::other(format!("the request url {url:?} is not an absolute http(s) url"));
        let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
        let rest = rest.split('#').next().unwrap_or("");
        let (authority, path_query) = match rest.find(['/', '?']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let authority = authority.rsplit('@').next().unwrap_or("").to_ascii_lowercase();
        if authority.is_empty() {
            return Err(bad());
        }
        let default = match scheme.to_ascii_lowercase().as_str() {
            "https" => ":443",
            "http" => ":80",
            _ => return Err(bad()),
        };
        let host = authority.strip_suffix(default).unwrap_or(&authority).to_string();
        let (path, query) = path_query.split_once('?').unwrap_or((path_query, ""));
        let query = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (decode(k), decode(v))
            })
            .collect();
        Ok(Url { host, path: if path.is_empty() { "/".into() } else { path.to_string() }, query })
    }
}

/// Percent-decoding of a query component (`+` is a space).
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex_val(bytes[i + 1]), hex_val(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests;
