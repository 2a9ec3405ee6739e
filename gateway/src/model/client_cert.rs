//! A webhook's TLS client certificate (mTLS): the PEM chain it presents and its private key (a
//! secret: sealed at rest by `secrets::fields`, masked in every answer), and the checks made when
//! it is saved: both parse, and the key belongs to the first certificate.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Most bytes of the certificate chain or the key PEM.
pub const MAX_PEM_BYTES: usize = 64 * 1024;

/// The certificate chain (leaf first) and private key a webhook's deliveries present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientCertificate {
    /// PEM: the client certificate, then any intermediates.
    pub certificate: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of the first certificate. Secret.
    pub private_key: String,
}

/// Which field a refusal is about, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertError {
    /// `certificate` or `private_key`.
    pub field: &'static str,
    pub message: String,
}

fn err(field: &'static str, message: impl Into<String>) -> CertError {
    CertError {
        field,
        message: message.into(),
    }
}

/// What an answer shows of a certificate besides the PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub subject: String,
    /// Unix seconds.
    pub not_after: i64,
}

impl ClientCertificate {
    /// Checks that the chain and key parse and that the key is the first certificate's.
    pub fn validate(&self) -> Result<CertInfo, CertError> {
        let chain = self.chain()?;
        let key = self.key()?;
        let signer = rustls::crypto::ring::sign::any_supported_type(&key)
            .map_err(|e| err("private_key", format!("is not a usable private key: {e}")))?;
        let certified = rustls::sign::CertifiedKey::new(chain.clone(), signer);
        match certified.keys_match() {
            Ok(()) => {}
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
                return Err(err(
                    "private_key",
                    "does not belong to the certificate (the first one in `certificate`)",
                ));
            }
            Err(e) => {
                return Err(err(
                    "private_key",
                    format!("could not be checked against the certificate: {e}"),
                ));
            }
        }
        info(&chain[0])
    }

    /// The subject and expiry of the first certificate.
    pub fn info(&self) -> Result<CertInfo, CertError> {
        info(&self.chain()?[0])
    }

    /// The PEM reqwest builds an identity from: key, then chain.
    pub fn identity_pem(&self) -> String {
        format!("{}\n{}\n", self.private_key.trim(), self.certificate.trim())
    }

    /// Hex SHA-256 of certificate and key: a cached client is reused only while this is the same.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.certificate.as_bytes());
        h.update([0]);
        h.update(self.private_key.as_bytes());
        hex::encode(h.finalize())
    }

    fn chain(&self) -> Result<Vec<CertificateDer<'static>>, CertError> {
        if self.certificate.len() > MAX_PEM_BYTES {
            return Err(err(
                "certificate",
                format!("must be at most {MAX_PEM_BYTES} bytes"),
            ));
        }
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(self.certificate.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| err("certificate", format!("is not valid PEM: {e}")))?;
        if chain.is_empty() {
            return Err(err(
                "certificate",
                "must hold at least one PEM `CERTIFICATE` block",
            ));
        }
        for (i, c) in chain.iter().enumerate() {
            x509_parser::parse_x509_certificate(c).map_err(|e| {
                err(
                    "certificate",
                    format!(
                        "certificate {} is not a valid X.509 certificate: {e}",
                        i + 1
                    ),
                )
            })?;
        }
        Ok(chain)
    }

    fn key(&self) -> Result<PrivateKeyDer<'static>, CertError> {
        if self.private_key.len() > MAX_PEM_BYTES {
            return Err(err(
                "private_key",
                format!("must be at most {MAX_PEM_BYTES} bytes"),
            ));
        }
        // The parser's message never quotes the key.
        PrivateKeyDer::from_pem_slice(self.private_key.as_bytes()).map_err(|_| {
            err(
                "private_key",
                "must be one PEM private key (PKCS#8 `PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`)",
            )
        })
    }
}

fn info(der: &CertificateDer<'_>) -> Result<CertInfo, CertError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| {
        err(
            "certificate",
            format!("is not a valid X.509 certificate: {e}"),
        )
    })?;
    Ok(CertInfo {
        subject: cert.subject().to_string(),
        not_after: cert.validity().not_after.timestamp(),
    })
}
