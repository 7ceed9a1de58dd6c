//! [`ClientIdentity`]: the client certificate and key presented to a
//! server that asks for one, read by libpq's rules.

use std::fmt;
use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::ConfigError;
use crate::options::{FileSetting, Param, Spelling};

/// A client certificate chain and its key, read from `sslcert`/`sslkey`
/// (or `PGSSLCERT`/`PGSSLKEY`) or libpq's default files.
pub(crate) struct ClientIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub cert: FileSetting,
    pub key_file: FileSetting,
}

impl ClientIdentity {
    /// Applies libpq's rules (the crate's docs have the table); `home`
    /// locates the defaults, `spelling` names them in messages.
    pub(crate) fn load(
        cert: Option<FileSetting>,
        key: Option<FileSetting>,
        home: Option<&Path>,
        spelling: Spelling,
    ) -> Result<Option<ClientIdentity>, ConfigError> {
        let default =
            |param: Param, file: &str| default_file(home, file).map(|p| FileSetting::new(spelling.name(param), p));
        let (cert, key_file) = match (cert, key) {
            (Some(cert), key) => {
                let key = key.or_else(|| default(Param::Key, "postgresql.key")).ok_or_else(|| {
                    ConfigError::new(format!(
                        "{cert} has no private key: {} or set PGSSLKEY (or install ~/.postgresql/postgresql.key)",
                        spelling.add(Param::Key)
                    ))
                })?;
                (cert, key)
            }
            (None, Some(key)) => match default(Param::Cert, "postgresql.crt") {
                Some(cert) => (cert, key),
                None => {
                    return Err(ConfigError::new(format!(
                        "{key} is given without a client certificate: {} or set PGSSLCERT",
                        spelling.add(Param::Cert)
                    )))
                }
            },
            (None, None) => match default(Param::Cert, "postgresql.crt") {
                None => return Ok(None),
                Some(cert) => {
                    let key = default(Param::Key, "postgresql.key").ok_or_else(|| {
                        ConfigError::new(format!(
                            "the client certificate {} has no private key: install ~/.postgresql/postgresql.key \
                             or {} (or set PGSSLKEY)",
                            cert.path.display(),
                            spelling.add(Param::Key)
                        ))
                    })?;
                    (cert, key)
                }
            },
        };
        let bad_cert = |e: &dyn fmt::Display| ConfigError::new(format!("{cert}: {e}"));
        let chain = CertificateDer::pem_file_iter(&cert.path)
            .map_err(|e| bad_cert(&e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad_cert(&e))?;
        if chain.is_empty() {
            return Err(bad_cert(&"no PEM certificate in the file"));
        }
        check_key_permissions(&key_file)?;
        let key = PrivateKeyDer::from_pem_file(&key_file.path).map_err(|e| {
            let reason = match e {
                rustls::pki_types::pem::Error::NoItemsFound => {
                    "no PEM private key (PKCS#8, PKCS#1 or SEC1) in the file".to_string()
                }
                other => other.to_string(),
            };
            ConfigError::new(format!("{key_file}: {reason}"))
        })?;
        Ok(Some(ClientIdentity { chain, key, cert, key_file }))
    }
}

/// libpq refuses a private key that others may read; so do Shoal's clients
/// (on Unix): at most 0600, or 0640 for a file owned by root.
fn check_key_permissions(key: &FileSetting) -> Result<(), ConfigError> {
    let meta = std::fs::metadata(&key.path).map_err(|e| ConfigError::new(format!("{key}: {e}")))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let too_open = if meta.uid() == 0 { meta.mode() & 0o037 != 0 } else { meta.mode() & 0o077 != 0 };
        if too_open {
            return Err(ConfigError::new(format!(
                "{key} has group or world access (mode {:o}); it must be u=rw (0600) or less, \
                 or u=rw,g=r (0640) or less if owned by root (chmod 0600 it)",
                meta.mode() & 0o777
            )));
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    Ok(())
}

/// One of libpq's default files, `~/.postgresql/<name>`, if it exists.
pub(crate) fn default_file(home: Option<&Path>, name: &str) -> Option<PathBuf> {
    home.map(|h| h.join(".postgresql").join(name)).filter(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{identity_files, set_mode};

    fn load(cert: Option<&Path>, key: Option<&Path>, home: &Path) -> Result<Option<ClientIdentity>, ConfigError> {
        let cert = cert.map(|p| FileSetting::new("sslcert", p));
        let key = key.map(|p| FileSetting::new("sslkey", p));
        ClientIdentity::load(cert, key, Some(home), Spelling::Url)
    }

    #[test]
    fn client_certificates_follow_libpq_defaults() {
        let home = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = identity_files(dir.path(), "app");

        eprintln!("nothing given and no default files: no client certificate");
        assert!(load(None, None, home.path()).unwrap().is_none());

        eprintln!("given files are read; the key may be PKCS#8 (rcgen), checked against the certificate");
        let id = load(Some(&cert), Some(&key), home.path()).unwrap().unwrap();
        assert_eq!((id.chain.len(), id.cert.path, id.key_file.path), (1, cert.clone(), key.clone()));

        eprintln!("~/.postgresql/postgresql.crt and .key are used when present");
        let defaults = home.path().join(".postgresql");
        std::fs::create_dir(&defaults).unwrap();
        std::fs::copy(&cert, defaults.join("postgresql.crt")).unwrap();
        let err = load(None, None, home.path()).err().unwrap();
        assert!(err.message().contains("postgresql.crt has no private key"), "{err}");
        std::fs::copy(&key, defaults.join("postgresql.key")).unwrap();
        set_mode(&defaults.join("postgresql.key"), 0o600);
        let id = load(None, None, home.path()).unwrap().unwrap();
        assert_eq!(id.cert.path, defaults.join("postgresql.crt"));
        eprintln!("an explicit sslcert takes the default key, as libpq does");
        let id = load(Some(&cert), None, home.path()).unwrap().unwrap();
        assert_eq!((id.cert.path, id.key_file.path), (cert.clone(), defaults.join("postgresql.key")));
    }

    #[test]
    fn bad_client_certificate_files_are_config_errors() {
        let home = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = identity_files(dir.path(), "app");
        let missing = dir.path().join("missing.pem");
        let open_key = dir.path().join("open.key");
        std::fs::copy(&key, &open_key).unwrap();
        set_mode(&open_key, 0o644);
        let cert_as_key = dir.path().join("cert-as.key");
        std::fs::copy(&cert, &cert_as_key).unwrap();
        set_mode(&cert_as_key, 0o600);
        let mut cases = vec![
            (Some(&cert), None, "has no private key: add sslkey"),
            (None, Some(&key), "without a client certificate"),
            (Some(&missing), Some(&key), "sslcert"),
            (Some(&cert), Some(&missing), "sslkey"),
            (Some(&key), Some(&key), "no PEM certificate"),
            (Some(&cert), Some(&cert_as_key), "no PEM private key"),
        ];
        if cfg!(unix) {
            cases.push((Some(&cert), Some(&open_key), "group or world access"));
        }
        for (c, k, needle) in cases {
            let err = load(c.map(PathBuf::as_path), k.map(PathBuf::as_path), home.path()).err().unwrap();
            assert!(err.message().contains(needle), "{c:?} {k:?}: {err}");
        }
    }

    #[test]
    fn messages_say_how_to_give_the_missing_file_on_a_command_line() {
        let home = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = identity_files(dir.path(), "app");
        let cert = Some(FileSetting::new("--sslcert", cert));
        let err = ClientIdentity::load(cert, None, Some(home.path()), Spelling::Flags).err().unwrap();
        assert!(err.message().starts_with("--sslcert "), "{err}");
        assert!(err.message().contains("has no private key: give --sslkey <PEM file> or set PGSSLKEY"), "{err}");
        let key = Some(FileSetting::new("--sslkey", key));
        let err = ClientIdentity::load(None, key, Some(home.path()), Spelling::Flags).err().unwrap();
        assert!(err.message().contains("without a client certificate: give --sslcert <PEM file>"), "{err}");
    }
}
