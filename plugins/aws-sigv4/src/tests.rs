use super::*;
use gateway_sdk::serde_json::json;

fn config() -> Value {
    json!({"region": "us-east-1", "service": "execute-api", "access_key_id": "AKIDEXAMPLE"})
}

#[test]
fn amz_date_is_utc_basic_format() {
    // 2015-08-30T12:36:00Z, the date of AWS's SigV4 test suite.
    assert_eq!(amz_date(1_440_938_160_000), "20150830T123600Z");
    assert_eq!(amz_date(951_782_400_000), "20000229T000000Z");
}

#[test]
fn url_parts_as_signed() {
    let u = Url::parse("HTTPS://Example.COM:443/a%20b/c?b=2&a=x%2By&flag").unwrap();
    assert_eq!(u.host, "example.com");
    assert_eq!(u.path, "/a%20b/c");
    assert_eq!(u.query, vec![("b".into(), "2".into()), ("a".into(), "x+y".into()), ("flag".into(), "".into())]);
    assert_eq!(Url::parse("http://127.0.0.1:8080").unwrap().host, "127.0.0.1:8080");
    assert!(Url::parse("ftp://x").is_err());
    assert_eq!(uri_encode("/a%20b/c", false), "/a%2520b/c");
}

#[test]
fn signs_with_the_derived_key_and_places_the_session_token() {
    secrets::testing::set(&[
        ("aws_secret_access_key", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        ("aws_session_token", "tok"),
    ]);
    let req = Request::post("https://example.com/path?x=1").body("{}");
    let attempt = Attempt { now_ms: 1_440_938_160_000, ..Default::default() };
    let out = sign(&req, &attempt, &config()).unwrap();
    let header = |n: &str| out.headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()).unwrap();
    assert_eq!(header("X-Amz-Date"), "20150830T123600Z");
    assert_eq!(header("X-Amz-Content-Sha256"), hex_sha256(b"{}"));
    let auth = header("Authorization");
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/execute-api/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature="),
        "{auth}"
    );
    assert_eq!(auth.rsplit('=').next().unwrap().len(), 64);
    assert_eq!(secrets::testing::take_placed(), vec![(false, "X-Amz-Security-Token".to_string(), "tok".to_string())]);
    // Another secret, another signature.
    secrets::testing::set(&[("aws_secret_access_key", "other")]);
    let other = sign(&req, &attempt, &config()).unwrap();
    assert_ne!(other.headers[2].1, auth);
}

#[test]
fn missing_config_or_secret_is_a_config_error() {
    secrets::testing::set(&[("aws_secret_access_key", "k")]);
    let req = Request::post("https://example.com/");
    let err = sign(&req, &Attempt::default(), &json!({"region": "us-east-1", "service": "s3"})).unwrap_err();
    assert!(matches!(&err, Error::InvalidConfig(m) if m.contains("access_key_id")), "{err:?}");
    secrets::testing::set(&[]);
    assert!(matches!(sign(&req, &Attempt::default(), &config()), Err(Error::InvalidConfig(_))));
}
