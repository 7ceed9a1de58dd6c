//! [`SslMode`]: libpq's `sslmode`.

use std::fmt;
use std::str::FromStr;

use tokio_postgres::config::SslMode as PgSslMode;

use crate::error::ConfigError;

/// libpq's `sslmode` (`allow` is refused: plain first, and TLS only if the
/// server refuses plain; `prefer` reaches the same servers, encrypted
/// whenever it can).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it, else plain; the server's certificate
    /// is not checked (its chain is, when a CA file is given). A handshake
    /// that fails is followed by one attempt without TLS, as in libpq.
    #[default]
    Prefer,
    /// Always TLS; the certificate is checked as for `Prefer`.
    Require,
    /// Always TLS; the certificate must chain to the CA file.
    VerifyCa,
    /// Always TLS; the certificate must chain to the CA file and name the host.
    VerifyFull,
}

impl SslMode {
    /// The mode as libpq spells it (`verify-full`).
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// What tokio-postgres is told: whether TLS is tried, and whether a
    /// server without it is refused.
    pub(crate) fn negotiation(self) -> PgSslMode {
        match self {
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Prefer => PgSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => PgSslMode::Require,
        }
    }

    /// Parses `value` as set by `name` (`sslmode`, `--sslmode` or
    /// `PGSSLMODE`), naming it in the error.
    pub(crate) fn parse(value: &str, name: &str) -> Result<SslMode, ConfigError> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            "allow" => {
                return Err(ConfigError::new(format!(
                    "{name}=allow is not supported (use disable, prefer, require, verify-ca or verify-full)"
                )))
            }
            other => {
                return Err(ConfigError::new(format!(
                    "invalid {name} \"{other}\" (expected disable, prefer, require, verify-ca or verify-full)"
                )))
            }
        })
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<SslMode, ConfigError> {
        SslMode::parse(s, "sslmode")
    }
}
