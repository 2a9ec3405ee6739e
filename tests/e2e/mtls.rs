//! Per-webhook TLS client certificates (mTLS) against a real local TLS server that demands a
//! client certificate signed by its CA (rustls' WebPKI client verifier) and answers with the
//! subject it verified. The CA, server and client certificates are made per test with rcgen; the
//! gateway trusts the server's CA through `delivery.extra_root_certificates`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Bytes;
use parking_lot::Mutex;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use reqwest::Method;
use serde_json::{Value, json};
use tokio_rustls::rustls;

use crate::support::TestGateway;

const WAIT: Duration = Duration::from_secs(15);

/// A CA that signs server and client certificates.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        Ca {
            issuer: CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf certificate for `names` with common name `cn`: (certificate PEM, key PEM, DER).
    fn leaf(&self, cn: &str, names: &[&str]) -> (String, String, Vec<u8>) {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut p = CertificateParams::new(names).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }
}

/// What the TLS server saw: the subjects of verified client certificates (one per request) and
/// the handshakes it refused.
#[derive(Default)]
struct Seen {
    subjects: Vec<String>,
    refused: Vec<String>,
}

/// An HTTPS server on 127.0.0.1:0 requiring a client certificate signed by `ca`.
struct MtlsServer {
    port: u16,
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MtlsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MtlsServer {
    async fn start(ca: &Ca) -> MtlsServer {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.issuer.der().clone()).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .unwrap();
        let (cert_pem, key_pem, _) = ca.leaf("receiver", &["localhost", "127.0.0.1"]);
        use rustls::pki_types::pem::PemObject;
        let chain = rustls::pki_types::CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let seen2 = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, seen) = (acceptor.clone(), seen2.clone());
                tokio::spawn(async move {
                    let tls = match acceptor.accept(tcp).await {
                        Ok(t) => t,
                        Err(e) => {
                            seen.lock().refused.push(e.to_string());
                            return;
                        }
                    };
                    let subject = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|c| {
                            x509_parser::parse_x509_certificate(c)
                                .map(|(_, x)| x.subject().to_string())
                                .unwrap_or_default()
                        })
                        .unwrap_or_default();
                    let service = hyper::service::service_fn(move |_req| {
                        let (seen, subject) = (seen.clone(), subject.clone());
                        async move {
                            seen.lock().subjects.push(subject.clone());
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                                Bytes::from(format!("client {subject}")),
                            )))
                        }
                    });
                    let io = hyper_util::rt::TokioIo::new(tls);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                });
            }
        });
        MtlsServer { port, seen, task }
    }

    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }
}

/// A gateway trusting `ca` for https receivers (written to a PEM file in its data dir).
async fn gateway_trusting(ca: &Ca) -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("receiver-ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    let mut config = crate::support::test_config(dir.path());
    config.delivery.extra_root_certificates = ca_path.display().to_string();
    TestGateway::start_in(dir, config, None).await
}

/// The attempts page of webhook `id`.
async fn attempts_of(gw: &TestGateway, id: &str) -> Value {
    let (_, page) = gw
        .admin(
            Method::GET,
            &format!("/api/v1/webhooks/{id}/attempts"),
            None,
        )
        .await;
    page
}

/// Waits for the first attempt of webhook `id` and returns it.
async fn first_attempt(gw: &TestGateway, id: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let page = attempts_of(gw, id).await;
        if let Some(a) = page["results"].as_array().and_then(|r| r.last()) {
            return a.clone();
        }
        assert!(Instant::now() < deadline, "no attempt for {id}: {page}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn body(name: &str, url: &str, cert: Option<(&str, &str)>) -> Value {
    let mut b = json!({"name": name, "url": url, "trigger_events": ["*"],
        "retry": {"type": "fixed", "count": 0, "interval_secs": 1}});
    if let Some((c, k)) = cert {
        b["client_certificate"] = json!({"certificate": c, "private_key": k});
    }
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_presents_its_client_certificate_and_the_key_never_shows() {
    let ca = Ca::new("receiver CA");
    let server = MtlsServer::start(&ca).await;
    let gw = gateway_trusting(&ca).await;
    let (cert, key, _) = ca.leaf("gateway-client-7", &["gateway.test"]);
    let other = Ca::new("stranger CA");
    let (stranger_cert, stranger_key, _) = other.leaf("stranger", &["stranger.test"]);

    let with = gw
        .create_webhook(body("with", &server.url("/with"), Some((&cert, &key))))
        .await;
    let without = gw
        .create_webhook(body("without", &server.url("/without"), None))
        .await;
    let stranger = gw
        .create_webhook(body(
            "stranger",
            &server.url("/stranger"),
            Some((&stranger_cert, &stranger_key)),
        ))
        .await;
    let view = with["client_certificate"].clone();
    assert_eq!(view["certificate"], cert.as_str(), "{view}");
    assert_eq!(view["private_key"], "****************", "{view}");
    assert!(
        view["subject"]
            .as_str()
            .unwrap()
            .contains("gateway-client-7"),
        "{view}"
    );
    assert!(
        view["not_after"].as_str().is_some_and(|s| s.ends_with('Z')),
        "{view}"
    );

    gw.post_event(&json!({"event_type": "incident.triggered", "message": "mtls"}))
        .await;
    let ok = first_attempt(&gw, with["id"].as_str().unwrap()).await;
    assert_eq!(ok["status_code"], 200, "{ok}");
    assert!(
        ok["response_body"]
            .as_str()
            .unwrap()
            .contains("CN=gateway-client-7"),
        "{ok}"
    );
    assert!(
        server
            .seen
            .lock()
            .subjects
            .iter()
            .any(|s| s.contains("CN=gateway-client-7")),
        "the receiver verified the webhook's certificate"
    );

    // No certificate: the server refuses the handshake and the attempt says so.
    let none = first_attempt(&gw, without["id"].as_str().unwrap()).await;
    assert!(none["status_code"].is_null(), "{none}");
    let err = none["error"].as_str().unwrap().to_ascii_lowercase();
    // rustls' alert from the server, e.g. "received fatal alert: CertificateRequired".
    assert!(
        err.contains("fatal alert") && err.contains("certificaterequired"),
        "handshake cause in {none}"
    );
    // A certificate from a CA the server does not trust.
    let bad = first_attempt(&gw, stranger["id"].as_str().unwrap()).await;
    assert!(bad["status_code"].is_null(), "{bad}");
    let err = bad["error"].as_str().unwrap().to_ascii_lowercase();
    assert!(
        err.contains("fatal alert") && err.contains("unknownca"),
        "handshake cause in {bad}"
    );
    {
        let seen = server.seen.lock();
        assert!(
            !seen.subjects.iter().any(|s| s.contains("stranger")),
            "stranger was let in"
        );
        assert!(
            seen.refused.len() >= 2,
            "server refused both: {:?}",
            seen.refused
        );
    }

    // The key is in no answer, no attempt log and not in clear in the database files.
    let key_body: String = key
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .join("");
    let needle = &key_body[..40];
    for id in [&with["id"], &stranger["id"]] {
        let id = id.as_str().unwrap();
        let (_, got) = gw
            .admin(Method::GET, &format!("/api/v1/webhooks/{id}"), None)
            .await;
        let attempts = attempts_of(&gw, id).await;
        for text in [got.to_string(), attempts.to_string()] {
            assert!(
                !text.contains(needle) && !text.contains("PRIVATE KEY"),
                "{text}"
            );
        }
    }
    let mut files = 0;
    for f in ["gateway.db", "gateway.db-wal"] {
        if let Ok(b) = std::fs::read(gw.dir.path().join(f)) {
            files += 1;
            let text = String::from_utf8_lossy(&b);
            assert!(!text.contains(needle), "{f} holds the key in clear");
            assert!(!text.contains("PRIVATE KEY"), "{f} holds the key in clear");
        }
    }
    assert!(files > 0, "no database file found");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_checked_on_save_and_the_mask_keeps_the_key() {
    let ca = Ca::new("receiver CA");
    let gw = gateway_trusting(&ca).await;
    let (cert, key, _) = ca.leaf("client-a", &["a.test"]);
    let (cert_b, key_b, _) = ca.leaf("client-b", &["b.test"]);

    let refused = [
        (
            json!({"certificate": cert, "private_key": key_b}),
            "client_certificate.private_key",
        ),
        (
            json!({"certificate": "not a pem", "private_key": key}),
            "client_certificate.certificate",
        ),
        (
            json!({"certificate": cert, "private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}),
            "client_certificate.private_key",
        ),
        (
            json!({"certificate": cert}),
            "client_certificate.private_key",
        ),
        (json!("pem"), "client_certificate"),
    ];
    for (cc, field) in refused {
        let (s, problem) = gw
            .admin(
                Method::POST,
                "/api/v1/webhooks/",
                Some(
                    &json!({"name": "x", "url": "https://localhost:9/x", "trigger_events": ["*"],
                    "client_certificate": cc}),
                ),
            )
            .await;
        assert_eq!(s, 400, "{problem}");
        assert_eq!(problem["field"], field, "{problem}");
        assert!(!problem.to_string().contains(&key_b[40..80]), "{problem}");
    }

    let w = gw
        .create_webhook(body("keep", "https://localhost:9/k", Some((&cert, &key))))
        .await;
    let id = w["id"].as_str().unwrap();
    let path = format!("/api/v1/webhooks/{id}");
    // Sending the view back keeps the key: a mismatched certificate with the masked key fails.
    let (s, p) = gw
        .admin(Method::PUT, &path, Some(&json!({"client_certificate": {"certificate": cert_b, "private_key": "****************"}})))
        .await;
    assert_eq!(
        (s.as_u16(), p["field"].as_str()),
        (400, Some("client_certificate.private_key")),
        "{p}"
    );
    let (s, p) = gw
        .admin(
            Method::PUT,
            &path,
            Some(&json!({"client_certificate": w["client_certificate"]})),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["client_certificate"]["certificate"], cert.as_str());
    // A new pair replaces it; null removes it.
    let (s, p) = gw
        .admin(
            Method::PUT,
            &path,
            Some(&json!({"client_certificate": {"certificate": cert_b, "private_key": key_b}})),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    assert!(
        p["client_certificate"]["subject"]
            .as_str()
            .unwrap()
            .contains("client-b"),
        "{p}"
    );
    let (s, p) = gw
        .admin(
            Method::PUT,
            &path,
            Some(&json!({"client_certificate": null})),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    assert!(p["client_certificate"].is_null(), "{p}");
    gw.stop().await;
}
