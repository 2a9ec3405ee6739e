//! The master key and the authenticated cipher that seals stored secrets.
//!
//! AES-256-GCM (RustCrypto's `aes-gcm`), a fresh random 96-bit nonce per value. A sealed value is
//! the text envelope `enc:v1:<key id>:<base64(nonce || ciphertext || tag)>`; the key id is the
//! first 8 bytes (hex) of SHA-256 over a label and the key, so a value sealed under another key
//! is recognised before any decryption is tried, and the error can say which key it needs. The
//! additional authenticated data is the envelope's version and key id.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::SecretsError;

/// Every sealed value starts with this.
pub const PREFIX: &str = "enc:v1:";

/// A 32-byte master key. `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.id())
    }
}

impl MasterKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        MasterKey(k)
    }

    /// Parses standard base64 of exactly 32 bytes (surrounding whitespace ignored). `source`
    /// names where the text came from, for the error.
    pub fn from_base64(text: &str, source: &str) -> Result<Self, SecretsError> {
        let bytes = BASE64.decode(text.trim()).map_err(|e| {
            SecretsError::BadKey(format!("{source}: not base64 ({e}); expected base64 of 32 bytes (webhook-gateway secrets generate-key prints one)"))
        })?;
        let k: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            SecretsError::BadKey(format!(
                "{source}: {} bytes after base64 decoding; expected exactly 32",
                b.len()
            ))
        })?;
        Ok(MasterKey(k))
    }

    /// Standard base64 of the key (what key files and `secrets_key` hold).
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0)
    }

    /// A short public fingerprint: 16 hex digits of SHA-256("webhook-gateway key id" || key).
    pub fn id(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"webhook-gateway key id\0");
        h.update(self.0);
        hex::encode(&h.finalize()[..8])
    }
}

/// Seals with one key and opens with it (or with older keys during a rotation).
#[derive(Clone)]
pub struct Keyring {
    current: (String, Aes256Gcm),
    older: Vec<(String, Aes256Gcm)>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keyring(current {})", self.current.0)
    }
}

fn aead(key: &MasterKey) -> (String, Aes256Gcm) {
    (
        key.id(),
        Aes256Gcm::new_from_slice(&key.0).expect("32-byte key"),
    )
}

impl Keyring {
    pub fn new(current: &MasterKey) -> Self {
        Keyring {
            current: aead(current),
            older: Vec::new(),
        }
    }

    /// Also opens values sealed under `older` (used by `secrets rotate`).
    pub fn with_older(mut self, older: &MasterKey) -> Self {
        self.older.push(aead(older));
        self
    }

    /// The id of the key new values are sealed under.
    pub fn current_id(&self) -> &str {
        &self.current.0
    }

    /// Seals `clear` under the current key.
    pub fn seal(&self, clear: &str) -> String {
        let (id, cipher) = &self.current;
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = format!("{PREFIX}{id}");
        let ct = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: clear.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of an in-memory value");
        let mut out = Vec::with_capacity(12 + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        format!("{aad}:{}", BASE64.encode(out))
    }

    /// Opens a stored value. A value without the envelope prefix is a clear value written before
    /// sealing existed and is returned as it is.
    pub fn open(&self, stored: &str) -> Result<String, SecretsError> {
        let Some((id, body)) = split(stored) else {
            return Ok(stored.to_string());
        };
        let cipher = std::iter::once(&self.current)
            .chain(&self.older)
            .find(|(k, _)| k == id)
            .map(|(_, c)| c)
            .ok_or_else(|| SecretsError::WrongKey {
                sealed_with: id.to_string(),
                have: self.current.0.clone(),
            })?;
        let raw = BASE64.decode(body).map_err(|_| {
            SecretsError::Corrupt(format!("value sealed under key {id}: not base64"))
        })?;
        if raw.len() < 12 + 16 {
            return Err(SecretsError::Corrupt(format!(
                "value sealed under key {id}: too short"
            )));
        }
        let (nonce, ct) = raw.split_at(12);
        let aad = format!("{PREFIX}{id}");
        let clear = cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| {
                SecretsError::Corrupt(format!(
                    "value sealed under key {id} fails authentication (altered or damaged)"
                ))
            })?;
        String::from_utf8(clear)
            .map_err(|_| SecretsError::Corrupt(format!("value sealed under key {id}: not UTF-8")))
    }

    /// Whether `stored` is already sealed under the current key (nothing to redo).
    pub fn is_current(&self, stored: &str) -> bool {
        split(stored).is_some_and(|(id, _)| id == self.current.0)
    }

    /// `stored` sealed under the current key: opened (clear or any known key) and sealed again,
    /// unless it already is.
    pub fn reseal(&self, stored: &str) -> Result<String, SecretsError> {
        if self.is_current(stored) {
            return Ok(stored.to_string());
        }
        Ok(self.seal(&self.open(stored)?))
    }
}

/// `enc:v1:<id>:<body>` -> (id, body).
fn split(stored: &str) -> Option<(&str, &str)> {
    stored.strip_prefix(PREFIX)?.split_once(':')
}

/// The key id a stored value is sealed under, if it is sealed.
pub fn sealed_key_id(stored: &str) -> Option<&str> {
    split(stored).map(|(id, _)| id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_a_fresh_nonce_each_time() {
        let ring = Keyring::new(&MasterKey::generate());
        let a = ring.seal("whsec_abc");
        let b = ring.seal("whsec_abc");
        assert!(a.starts_with(PREFIX) && !a.contains("whsec_abc"));
        assert_ne!(a, b, "each seal uses a new nonce");
        assert_eq!(ring.open(&a).unwrap(), "whsec_abc");
        assert_eq!(ring.open(&b).unwrap(), "whsec_abc");
        assert_eq!(ring.open(&ring.seal("")).unwrap(), "");
    }

    #[test]
    fn tampering_is_detected() {
        let ring = Keyring::new(&MasterKey::generate());
        let sealed = ring.seal("hunter2-password");
        let (head, body) = sealed.rsplit_once(':').unwrap();
        let mut raw = BASE64.decode(body).unwrap();
        raw[14] ^= 1;
        let tampered = format!("{head}:{}", BASE64.encode(raw));
        assert!(matches!(
            ring.open(&tampered),
            Err(SecretsError::Corrupt(m)) if m.contains("authentication")
        ));
        // Changing the key id in the envelope is caught too (it is authenticated data).
        let other = MasterKey::generate();
        let swapped = sealed.replacen(ring.current_id(), &other.id(), 1);
        assert!(
            Keyring::new(&other)
                .with_older(&MasterKey::generate())
                .open(&swapped)
                .is_err()
        );
    }

    #[test]
    fn wrong_key_is_named_before_decrypting() {
        let a = MasterKey::generate();
        let b = MasterKey::generate();
        let sealed = Keyring::new(&a).seal("tok");
        match Keyring::new(&b).open(&sealed) {
            Err(SecretsError::WrongKey { sealed_with, have }) => {
                assert_eq!(sealed_with, a.id());
                assert_eq!(have, b.id());
            }
            other => panic!("expected WrongKey, got {other:?}"),
        }
        // During a rotation both open; reseal moves to the new key.
        let ring = Keyring::new(&b).with_older(&a);
        let moved = ring.reseal(&sealed).unwrap();
        assert_eq!(sealed_key_id(&moved), Some(b.id().as_str()));
        assert_eq!(Keyring::new(&b).open(&moved).unwrap(), "tok");
    }

    #[test]
    fn clear_legacy_values_pass_and_reseal() {
        let ring = Keyring::new(&MasterKey::generate());
        assert_eq!(ring.open("plain old").unwrap(), "plain old");
        assert!(!ring.is_current("plain old"));
        let s = ring.reseal("plain old").unwrap();
        assert!(ring.is_current(&s));
        assert_eq!(ring.reseal(&s).unwrap(), s, "already current: unchanged");
    }

    #[test]
    fn key_text_must_be_base64_of_32_bytes() {
        let k = MasterKey::generate();
        assert_eq!(
            MasterKey::from_base64(&format!(" {}\n", k.to_base64()), "x").unwrap(),
            k
        );
        let e = MasterKey::from_base64("c2hvcnQ=", "secrets_key").unwrap_err();
        assert!(e.to_string().contains("secrets_key") && e.to_string().contains("32"));
        assert!(MasterKey::from_base64("not base64!", "secrets_key").is_err());
        assert!(!format!("{k:?}").contains(&k.to_base64()));
    }
}
