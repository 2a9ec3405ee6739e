//! Secrets at rest and in answers.
//!
//! Every stored secret (see [`fields`] for the list) is sealed with AES-256-GCM ([`cipher`]) under
//! a master key before it reaches SQLite or PostgreSQL; the store wrapper
//! [`crate::store::sealed::SealedStore`] seals on write and opens on read, so the rest of the
//! gateway only ever sees clear values in memory. The master key comes from `secrets_key`
//! (`GATEWAY_SECRETS_KEY`, base64 of 32 bytes), else from the file `secrets_key_file`, else from
//! `<data_dir>/secrets.key`, which the gateway creates (mode 0600) on first start ([`key`]).
//!
//! The database keeps a key check (a known value sealed under the key, in the `settings` table):
//! a node whose key differs refuses to start, naming both key ids, and a missing key file is
//! never silently replaced once the database holds sealed values. Values written before sealing
//! existed are sealed by a one-off pass on the first start ([`unlock`]).
//! `webhook-gateway secrets rotate` re-seals everything under a new key ([`rotate`]).
//!
//! [`mask`] is the one masking function family every answer, log line and attempt record uses.

pub mod cipher;
pub mod fields;
pub mod key;
pub mod mask;
pub mod raw;

pub use cipher::{Keyring, MasterKey};
pub use raw::RawDb;

use crate::config::Config;

/// Settings row holding the key check.
pub const CHECK_SETTING: &str = "secrets_key_check";
/// Settings row written once every clear value of an older database has been sealed.
pub const SEALED_SETTING: &str = "secrets_sealed_v1";
/// The clear text of the key check.
const CHECK_TEXT: &str = "webhook-gateway key check";

/// Why secrets could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("master key: {0}")]
    BadKey(String),
    #[error(
        "master key mismatch: a stored secret is sealed under key {sealed_with}, this node's master key is {have}"
    )]
    WrongKey { sealed_with: String, have: String },
    #[error("stored secret is damaged: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Refused(String),
    #[error("secrets database access: {0}")]
    Db(String),
}

/// Loads the master key, checks it against the database (writing the check on first start) and
/// seals any clear value left by an older version. Returns the keyring the store seals with.
pub async fn unlock(config: &Config, db: &RawDb) -> Result<Keyring, SecretsError> {
    let check = db.get_setting(CHECK_SETTING).await?;
    let (master, source) = key::load(config, check.is_some())?;
    let ring = Keyring::new(&master);
    let check = match check {
        Some(c) => c,
        None => {
            // Claim first, compare after: two nodes starting together agree on one key.
            db.put_setting(CHECK_SETTING, &ring.seal(CHECK_TEXT), false)
                .await?;
            db.get_setting(CHECK_SETTING)
                .await?
                .ok_or_else(|| SecretsError::Db("the key check vanished".into()))?
        }
    };
    verify(&ring, &check, &source)?;
    if db.get_setting(SEALED_SETTING).await?.is_none() {
        let report = db.reseal_all(ring.clone()).await?;
        if report.changed > 0 {
            db.compact().await?;
            tracing::info!(
                rows = report.changed,
                "sealed the secrets an older version stored in clear"
            );
        }
        db.put_setting(SEALED_SETTING, "1", true).await?;
    }
    Ok(ring)
}

/// The key check must open under `ring` to the known text.
fn verify(ring: &Keyring, check: &str, source: &str) -> Result<(), SecretsError> {
    match ring.open(check) {
        Ok(t) if t == CHECK_TEXT => Ok(()),
        Ok(_) => Err(SecretsError::Corrupt(
            "the key check holds another text".into(),
        )),
        Err(SecretsError::WrongKey { sealed_with, have }) => Err(SecretsError::Refused(format!(
            "master key mismatch: the database's secrets are sealed under key {sealed_with}, but this node's master key ({source}) is {have}; start with the key the database was sealed with (every node sharing a database needs the same secrets_key or secrets_key_file), or re-seal with `webhook-gateway secrets rotate`"
        ))),
        Err(e) => Err(e),
    }
}

/// What `secrets rotate` did.
#[derive(Debug)]
pub struct RotateReport {
    pub old_id: String,
    pub new_id: String,
    pub rows_resealed: u64,
    /// The default key file, rewritten with the new key (None: the key comes from the config).
    pub key_file_replaced: Option<std::path::PathBuf>,
}

/// Re-seals every stored secret under `new`, then moves the key check to it. Resumable: a value
/// already sealed under `new` is left as it is, so an interrupted rotation is finished by running
/// the same command again (the check still names the old key until the end).
pub async fn rotate(
    config: &Config,
    db: &RawDb,
    new: &MasterKey,
) -> Result<RotateReport, SecretsError> {
    let check = db.get_setting(CHECK_SETTING).await?.ok_or_else(|| {
        SecretsError::Refused(
            "the database has no key check yet: start the gateway once before rotating".into(),
        )
    })?;
    let (current, source) = key::load(config, true)?;
    let ring = Keyring::new(new).with_older(&current);
    let checked = ring.open(&check).ok().filter(|t| t == CHECK_TEXT);
    if checked.is_none() {
        // Neither the current nor the new key opens the check: say which key it needs.
        verify(&Keyring::new(&current), &check, &source)?;
    }
    let report = db.reseal_all(ring.clone()).await?;
    db.put_setting(CHECK_SETTING, &ring.seal(CHECK_TEXT), true)
        .await?;
    let key_file_replaced = key::replace_default_file(config, new)?;
    Ok(RotateReport {
        old_id: current.id(),
        new_id: new.id(),
        rows_resealed: report.changed,
        key_file_replaced,
    })
}
