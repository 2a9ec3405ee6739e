//! Request signing, as pure functions: Standard Webhooks v1 (the default), Callgoose's HMAC-SHA512,
//! and secret rotation with a grace period.
//!
//! Signing is the last step before a request leaves: it covers the exact body bytes that are sent,
//! and is redone on every attempt with that attempt's time, because verifiers reject timestamps more
//! than about five minutes off (a retry hours later must not carry the first attempt's timestamp).
//!
//! Every attempt also carries `webhook-id` (the delivery id) whatever the signing scheme, so
//! receivers can drop duplicates; [`signature_headers`] is the one place that adds it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha512};

use crate::model::{RetiredSecret, Signing};

/// Prefix of Standard Webhooks secrets; the rest is the base64 of the key bytes.
pub const SECRET_PREFIX: &str = "whsec_";
/// Standard Webhooks header carrying the message (delivery) id; the same on every attempt.
pub const HEADER_ID: &str = "webhook-id";
/// Standard Webhooks header carrying the attempt's unix time in seconds.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// Standard Webhooks header carrying one or more space-separated `v1,<base64>` signatures.
pub const HEADER_SIGNATURE: &str = "webhook-signature";

/// Why a request could not be signed. A signing failure fails the attempt: sending the request
/// unsigned would teach receivers to accept unsigned requests.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// Standard Webhooks secrets are `whsec_` + base64; anything else cannot be decoded to a key.
    #[error("signing secret is not base64 (expected `whsec_` followed by base64)")]
    InvalidSecret(#[source] base64::DecodeError),
    /// An empty key would make every signature forgeable.
    #[error("signing secret is empty")]
    EmptySecret,
}

/// Decodes a Standard Webhooks secret to its key bytes. The `whsec_` prefix is optional, as in the
/// reference libraries (the `standardwebhooks` crate strips it when present).
pub fn decode_standard_secret(secret: &str) -> Result<Vec<u8>, SigningError> {
    let b64 = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    let key = BASE64.decode(b64).map_err(SigningError::InvalidSecret)?;
    if key.is_empty() {
        return Err(SigningError::EmptySecret);
    }
    Ok(key)
}

/// Checks every secret of a signing configuration, so the API can refuse a webhook whose secret
/// would fail every attempt later.
pub fn validate(signing: &Signing) -> Result<(), SigningError> {
    match signing {
        Signing::None => Ok(()),
        Signing::StandardWebhooks { secret, previous } => {
            decode_standard_secret(secret)?;
            previous
                .iter()
                .try_for_each(|p| decode_standard_secret(&p.secret).map(drop))
        }
        Signing::HmacSha512 {
            secret, previous, ..
        } => {
            if secret.is_empty() || previous.iter().any(|p| p.secret.is_empty()) {
                return Err(SigningError::EmptySecret);
            }
            Ok(())
        }
    }
}

/// Standard Webhooks v1: `v1,` + base64(HMAC-SHA256(key, "{msg_id}.{timestamp}.{body}")).
pub fn sign_standard(
    secret: &str,
    msg_id: &str,
    timestamp_secs: i64,
    body: &[u8],
) -> Result<String, SigningError> {
    let key = decode_standard_secret(secret)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC accepts keys of any length");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp_secs.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!("v1,{}", BASE64.encode(mac.finalize().into_bytes())))
}

/// Callgoose HMAC-SHA512 signature of `"{timestamp}.{body}"`, keyed with the secret's UTF-8 bytes
/// as typed in the dashboard (seed 002 uses the "hmac key" directly, not decoded).
///
/// Encoding: seed 002 only says "compute an HMAC with the SHA512 hash function. The result will be
/// the signature" and never names an encoding, so we chose **lowercase hex** (128 characters), the
/// usual textual form of a raw digest and the one that survives a comma-separated header value
/// without escaping.
pub fn sign_hmac_sha512(
    secret: &str,
    timestamp_secs: i64,
    body: &[u8],
) -> Result<String, SigningError> {
    if secret.is_empty() {
        return Err(SigningError::EmptySecret);
    }
    let mut mac =
        Hmac::<Sha512>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(timestamp_secs.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(hex::encode(mac.finalize().into_bytes()))
}

/// The secrets that sign at `now_ms`: the current one first, then every retired secret whose grace
/// period has not ended (`expires_at > now_ms`).
fn live_secrets<'a>(
    secret: &'a str,
    previous: &'a [RetiredSecret],
    now_ms: i64,
) -> impl Iterator<Item = &'a str> {
    std::iter::once(secret).chain(
        previous
            .iter()
            .filter(move |p| p.expires_at > now_ms)
            .map(|p| p.secret.as_str()),
    )
}

/// The headers one attempt carries for its signing configuration, signed with the attempt's time.
///
/// - Always `webhook-id: <msg_id>` (the delivery id; identical on every attempt).
/// - Standard Webhooks: `webhook-timestamp` and `webhook-signature`, the latter holding one
///   space-separated `v1,<b64>` per live secret, current first, as the spec allows; verifiers
///   accept the request if any signature matches, which is what makes rotation seamless.
/// - Callgoose: `<header>: <timestamp>,<hex signature>` with the current secret. During a rotation
///   grace period the retired secrets' signatures follow as further comma-separated items
///   (`ts,sig_new,sig_old`). A receiver following seed 002 literally reads only the second item,
///   i.e. the current secret, and sees exactly two items whenever no rotation is in progress; a
///   rotation-aware receiver may accept any of the items after the timestamp.
///
/// Callers pass the bytes actually sent (empty for requests without a body: Callgoose only signs
/// body requests, and a signature over the empty body is harmless to receivers that ignore it).
///
/// Returns an error rather than unsigned headers if any live secret cannot be used.
pub fn signature_headers(
    signing: &Signing,
    msg_id: &str,
    now_ms: i64,
    body: &[u8],
) -> Result<Vec<(String, String)>, SigningError> {
    let ts = now_ms.div_euclid(1000);
    let mut headers = vec![(HEADER_ID.to_string(), msg_id.to_string())];
    match signing {
        Signing::None => {}
        Signing::StandardWebhooks { secret, previous } => {
            let sigs = live_secrets(secret, previous, now_ms)
                .map(|s| sign_standard(s, msg_id, ts, body))
                .collect::<Result<Vec<_>, _>>()?;
            headers.push((HEADER_TIMESTAMP.to_string(), ts.to_string()));
            headers.push((HEADER_SIGNATURE.to_string(), sigs.join(" ")));
        }
        Signing::HmacSha512 {
            header,
            secret,
            previous,
        } => {
            let mut value = ts.to_string();
            for s in live_secrets(secret, previous, now_ms) {
                value.push(',');
                value.push_str(&sign_hmac_sha512(s, ts, body)?);
            }
            headers.push((header.clone(), value));
        }
    }
    Ok(headers)
}

/// Rotates the signing secret: `new_secret` becomes current, the old current secret keeps signing
/// until `now_ms + grace_ms`, and retired secrets whose grace has ended are dropped.
///
/// `Signing::None` is returned unchanged: turning signing on is a configuration change (choosing a
/// scheme), not a rotation. A `grace_ms` of zero or less retires the old secret immediately.
/// Retired secrets are kept newest first; a retired copy of `new_secret` itself is dropped, so
/// rotating back to a recent secret does not sign twice with it.
pub fn rotate(signing: &Signing, new_secret: String, now_ms: i64, grace_ms: i64) -> Signing {
    let retire = |old: &str, previous: &[RetiredSecret]| -> Vec<RetiredSecret> {
        let expires_at = now_ms.saturating_add(grace_ms);
        std::iter::once(RetiredSecret {
            secret: old.to_string(),
            expires_at,
        })
        .chain(previous.iter().cloned())
        .filter(|p| p.expires_at > now_ms && p.secret != new_secret)
        .collect()
    };
    match signing {
        Signing::None => Signing::None,
        Signing::StandardWebhooks { secret, previous } => Signing::StandardWebhooks {
            previous: retire(secret, previous),
            secret: new_secret,
        },
        Signing::HmacSha512 {
            header,
            secret,
            previous,
        } => Signing::HmacSha512 {
            header: header.clone(),
            previous: retire(secret, previous),
            secret: new_secret,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

    const SPEC_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const SPEC_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const SPEC_TS: i64 = 1649367553;
    const SPEC_BODY: &str = r#"{"email":"test@example.com","username":"test_user"}"#;

    fn now_ms() -> i64 {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        i64::try_from(d.as_millis()).unwrap()
    }

    fn header_map(headers: &[(String, String)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    fn get<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn standard_webhooks_spec_test_vector() {
        let sig = sign_standard(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY.as_bytes()).unwrap();
        assert_eq!(sig, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
        // The prefix is optional, as in the reference libraries.
        let bare = SPEC_SECRET.strip_prefix(SECRET_PREFIX).unwrap();
        assert_eq!(
            sign_standard(bare, SPEC_ID, SPEC_TS, SPEC_BODY.as_bytes()).unwrap(),
            sig
        );
    }

    #[test]
    fn standard_webhooks_headers_verify_with_independent_crate() {
        let signing = Signing::StandardWebhooks {
            secret: SPEC_SECRET.into(),
            previous: vec![],
        };
        let now = now_ms();
        let headers = signature_headers(&signing, SPEC_ID, now, SPEC_BODY.as_bytes()).unwrap();
        assert_eq!(get(&headers, HEADER_ID), Some(SPEC_ID));
        assert_eq!(
            get(&headers, HEADER_TIMESTAMP),
            Some((now / 1000).to_string().as_str())
        );
        let verifier = standardwebhooks::Webhook::new(SPEC_SECRET).unwrap();
        verifier
            .verify(SPEC_BODY.as_bytes(), &header_map(&headers))
            .unwrap();
        // A tampered body fails.
        assert!(verifier.verify(b"{}", &header_map(&headers)).is_err());
    }

    #[test]
    fn rotation_signs_with_old_and_new_until_grace_ends() {
        let old = crate::model::new_signing_secret();
        let new = crate::model::new_signing_secret();
        let now = now_ms();
        let signing = Signing::StandardWebhooks {
            secret: old.clone(),
            previous: vec![],
        };
        let rotated = rotate(&signing, new.clone(), now, 60_000);
        assert_eq!(
            rotated,
            Signing::StandardWebhooks {
                secret: new.clone(),
                previous: vec![RetiredSecret {
                    secret: old.clone(),
                    expires_at: now + 60_000
                }]
            }
        );

        let headers = signature_headers(&rotated, "msg_1", now, b"hello").unwrap();
        let sig = get(&headers, HEADER_SIGNATURE).unwrap();
        assert_eq!(sig.split(' ').count(), 2, "{sig}");
        assert!(sig.starts_with(&sign_standard(&new, "msg_1", now / 1000, b"hello").unwrap()));
        // Receivers on either key accept it.
        for key in [&old, &new] {
            standardwebhooks::Webhook::new(key)
                .unwrap()
                .verify(b"hello", &header_map(&headers))
                .unwrap();
        }

        // After the grace period only the new key signs.
        let later = now + 60_000;
        let headers = signature_headers(&rotated, "msg_1", later, b"hello").unwrap();
        assert_eq!(
            get(&headers, HEADER_SIGNATURE).unwrap().split(' ').count(),
            1
        );
        // And the next rotation drops the expired secret.
        let third = crate::model::new_signing_secret();
        match rotate(&rotated, third.clone(), later, 1_000) {
            Signing::StandardWebhooks { secret, previous } => {
                assert_eq!(secret, third);
                assert_eq!(
                    previous,
                    vec![RetiredSecret {
                        secret: new,
                        expires_at: later + 1_000
                    }]
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn rotation_without_grace_and_of_none() {
        let signing = Signing::HmacSha512 {
            header: "X-Sig".into(),
            secret: "a".into(),
            previous: vec![],
        };
        assert_eq!(
            rotate(&signing, "b".into(), 10, 0),
            Signing::HmacSha512 {
                header: "X-Sig".into(),
                secret: "b".into(),
                previous: vec![]
            }
        );
        assert_eq!(rotate(&Signing::None, "b".into(), 10, 1000), Signing::None);
    }

    /// Follows seed 002's receiver steps literally: split the header value on `,` into two items
    /// (timestamp, signature); build `signPayload` = timestamp + "." + body; HMAC-SHA512 it with the
    /// dashboard key; compare with the second item; then check the timestamp's age.
    #[test]
    fn callgoose_signature_verifies_by_seed_receiver_steps() {
        let key = "my-sqibs-hmac-key";
        let body = r#"{"id":"INC-123","title":"Its a title","urgency":"high"}"#;
        let signing = Signing::HmacSha512 {
            header: "X-Callgoose-Signature".into(),
            secret: key.into(),
            previous: vec![],
        };
        let now = 1_685_549_253_123;
        let headers = signature_headers(&signing, "msg_1", now, body.as_bytes()).unwrap();
        let value = get(&headers, "x-callgoose-signature").unwrap();

        // Step 1: split on the comma; the list has 2 items.
        let items: Vec<&str> = value.split(',').collect();
        assert_eq!(items.len(), 2);
        let (timestamp, signature) = (items[0], items[1]);
        assert_eq!(timestamp, "1685549253");
        // Step 2: signPayload = timestamp + "." + request body; HMAC-SHA512 with the key.
        let sign_payload = format!("{timestamp}.{body}");
        let mut mac = Hmac::<Sha512>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(sign_payload.as_bytes());
        let expected = hex::encode(mac.finalize().into_bytes());
        // Step 3: compare.
        assert_eq!(signature, expected);
        assert_eq!(signature.len(), 128);
        // Extra check: the timestamp is the attempt's time.
        assert!((now / 1000 - timestamp.parse::<i64>().unwrap()).abs() < 300);
        // Every attempt carries webhook-id, whatever the scheme.
        assert_eq!(get(&headers, HEADER_ID), Some("msg_1"));
    }

    #[test]
    fn callgoose_rotation_appends_retired_signatures() {
        let signing = Signing::HmacSha512 {
            header: "X-Sig".into(),
            secret: "new".into(),
            previous: vec![RetiredSecret {
                secret: "old".into(),
                expires_at: 5_000,
            }],
        };
        let headers = signature_headers(&signing, "m", 4_000, b"x").unwrap();
        let value = get(&headers, "X-Sig").unwrap();
        let expected = format!(
            "4,{},{}",
            sign_hmac_sha512("new", 4, b"x").unwrap(),
            sign_hmac_sha512("old", 4, b"x").unwrap()
        );
        assert_eq!(value, expected);
        let after = signature_headers(&signing, "m", 5_000, b"x").unwrap();
        assert_eq!(get(&after, "X-Sig").unwrap().split(',').count(), 2);
    }

    #[test]
    fn unsigned_requests_still_carry_webhook_id() {
        let headers = signature_headers(&Signing::None, "msg_9", 0, b"").unwrap();
        assert_eq!(headers, vec![(HEADER_ID.to_string(), "msg_9".to_string())]);
    }

    #[test]
    fn bad_secrets_are_errors_not_unsigned_requests() {
        let signing = Signing::StandardWebhooks {
            secret: "whsec_not base64!".into(),
            previous: vec![],
        };
        assert!(matches!(
            signature_headers(&signing, "m", 0, b""),
            Err(SigningError::InvalidSecret(_))
        ));
        assert!(validate(&signing).is_err());
        assert!(matches!(
            decode_standard_secret("whsec_"),
            Err(SigningError::EmptySecret)
        ));
        let hmac = Signing::HmacSha512 {
            header: "X".into(),
            secret: String::new(),
            previous: vec![],
        };
        assert!(matches!(validate(&hmac), Err(SigningError::EmptySecret)));
        assert!(
            validate(&Signing::StandardWebhooks {
                secret: SPEC_SECRET.into(),
                previous: vec![]
            })
            .is_ok()
        );
    }
}
