//! Where the master key comes from: `secrets_key` (base64 of 32 bytes), else the file
//! `secrets_key_file`, else `<data_dir>/secrets.key`, created with mode 0600 on first start.
//! Also the file modes the gateway keeps its data under (directory 0700, files 0600).

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{MasterKey, SecretsError};
use crate::config::Config;

/// The default key file.
pub fn default_path(config: &Config) -> PathBuf {
    config.data_dir.join("secrets.key")
}

/// The master key and a description of where it came from (never the key itself).
/// `database_sealed` says the database already holds a key check: then a missing key file is an
/// error, never a reason to make a new key.
pub fn load(config: &Config, database_sealed: bool) -> Result<(MasterKey, String), SecretsError> {
    if !config.secrets_key.is_empty() {
        let k = MasterKey::from_base64(&config.secrets_key, "secrets_key")?;
        return Ok((k, "secrets_key".into()));
    }
    let explicit = !config.secrets_key_file.is_empty();
    let path = if explicit {
        PathBuf::from(&config.secrets_key_file)
    } else {
        default_path(config)
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let source = format!("key file {}", path.display());
            warn_if_open(&path);
            Ok((MasterKey::from_base64(&text, &source)?, source))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if explicit {
                return Err(SecretsError::BadKey(format!(
                    "secrets_key_file {}: no such file",
                    path.display()
                )));
            }
            if database_sealed {
                return Err(SecretsError::Refused(format!(
                    "the database holds secrets sealed under a master key, but there is no master key: {} is missing and neither secrets_key nor secrets_key_file is set; restore the key file or set the key the database was sealed with",
                    path.display()
                )));
            }
            let k = MasterKey::generate();
            write_key_file(&path, &k, false)?;
            tracing::info!(path = %path.display(), key_id = %k.id(), "created a new master key for stored secrets; back it up");
            Ok((k, format!("key file {}", path.display())))
        }
        Err(e) => Err(SecretsError::BadKey(format!(
            "reading key file {}: {e}",
            path.display()
        ))),
    }
}

/// After a rotation: rewrites the default key file with `new` when that file is the key's
/// source; returns its path, or `None` when the key comes from the configuration.
pub fn replace_default_file(
    config: &Config,
    new: &MasterKey,
) -> Result<Option<PathBuf>, SecretsError> {
    if !config.secrets_key.is_empty() || !config.secrets_key_file.is_empty() {
        return Ok(None);
    }
    let path = default_path(config);
    write_key_file(&path, new, true)?;
    Ok(Some(path))
}

/// Writes `key` to `path` with mode 0600 (via a temporary file and a rename when replacing).
fn write_key_file(path: &Path, key: &MasterKey, replace: bool) -> Result<(), SecretsError> {
    let err = |e: std::io::Error| SecretsError::BadKey(format!("writing {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        create_private_dir(dir).map_err(err)?;
    }
    let target = if replace {
        path.with_extension("key.new")
    } else {
        path.to_path_buf()
    };
    let mut f = private_file_options(!replace).open(&target).map_err(err)?;
    f.write_all(format!("{}\n", key.to_base64()).as_bytes())
        .map_err(err)?;
    f.sync_all().map_err(err)?;
    if replace {
        std::fs::rename(&target, path).map_err(err)?;
    }
    Ok(())
}

#[cfg(unix)]
fn private_file_options(create_new: bool) -> std::fs::OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).mode(0o600);
    if create_new {
        o.create_new(true);
    } else {
        o.create(true).truncate(true);
    }
    o
}

#[cfg(not(unix))]
fn private_file_options(create_new: bool) -> std::fs::OpenOptions {
    let mut o = std::fs::OpenOptions::new();
    o.write(true);
    if create_new {
        o.create_new(true);
    } else {
        o.create(true).truncate(true);
    }
    o
}

/// Creates `dir` (and parents) and makes it 0700.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    set_mode(dir, 0o700)
}

/// Creates `file` empty with mode 0600 when absent, or makes an existing one 0600 (and its
/// SQLite `-wal` / `-shm` companions, which SQLite creates with the database's mode).
pub fn private_db_file(file: &Path) -> std::io::Result<()> {
    if !file.exists() {
        private_file_options(true).open(file)?;
    }
    set_mode(file, 0o600)?;
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut p = file.as_os_str().to_owned();
        p.push(suffix);
        let p = PathBuf::from(p);
        if p.exists() {
            set_mode(&p, 0o600)?;
        }
    }
    Ok(())
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) -> std::io::Result<()> {
    Ok(())
}

/// A key file others can read is used, with a warning.
fn warn_if_open(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(path)
            && m.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), "the master key file is readable by other users; chmod 600 it");
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> Config {
        let mut c = Config::defaults();
        c.data_dir = dir.join("data");
        c
    }

    #[test]
    fn first_start_creates_a_private_key_file_and_reuses_it() {
        let tmp = tempfile::tempdir().unwrap();
        let c = config(tmp.path());
        let (k1, src) = load(&c, false).unwrap();
        assert!(src.contains("secrets.key"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(default_path(&c))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
            let dmode = std::fs::metadata(&c.data_dir).unwrap().permissions().mode();
            assert_eq!(dmode & 0o777, 0o700);
        }
        let (k2, _) = load(&c, true).unwrap();
        assert_eq!(k1, k2);
    }

    #[test]
    fn a_missing_key_file_is_an_error_once_the_database_is_sealed() {
        let tmp = tempfile::tempdir().unwrap();
        let c = config(tmp.path());
        let e = load(&c, true).unwrap_err().to_string();
        assert!(e.contains("secrets.key is missing"), "{e}");
        assert!(!default_path(&c).exists(), "no new key was made");
    }

    #[test]
    fn configured_key_wins_and_bad_ones_name_their_key() {
        let tmp = tempfile::tempdir().unwrap();
        let mut c = config(tmp.path());
        let k = MasterKey::generate();
        c.secrets_key = k.to_base64();
        assert_eq!(load(&c, true).unwrap().0, k);
        c.secrets_key = "c2hvcnQ=".into();
        assert!(
            load(&c, true)
                .unwrap_err()
                .to_string()
                .contains("secrets_key")
        );
        c.secrets_key.clear();
        c.secrets_key_file = tmp.path().join("nope").display().to_string();
        assert!(
            load(&c, false)
                .unwrap_err()
                .to_string()
                .contains("secrets_key_file")
        );
    }
}
