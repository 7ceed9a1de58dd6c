//! [`ConfigError`]: a TLS option, or a file it names, that cannot be used.

use std::fmt;

/// A TLS option that cannot be used: an unknown `sslmode`, an empty
/// variable, a missing or unreadable file, a certificate without its key, a
/// key others may read, a key that is not the certificate's. Nothing has
/// been sent to a server yet.
///
/// The message is for people: it names the option as the user wrote it
/// (`sslcert`, `--sslcert` or `PGSSLCERT`) and the file. There is nothing
/// to match on inside it; a caller reports it as a whole (the ORM as
/// `Error::Config`, SQLSTATE 22023):
///
/// ```
/// # use shoal_pgtls::{process_env, Spelling, TlsSettings};
/// let given = TlsSettings { sslcert: Some("/nonexistent/app.crt".into()), ..TlsSettings::default() };
/// match given.resolve(Spelling::Flags, &process_env) {
///     Ok(options) => println!("TLS: {}", options.mode()),
///     Err(e) => eprintln!("bad TLS option: {e}"),
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(String);

impl ConfigError {
    pub(crate) fn new(message: impl Into<String>) -> ConfigError {
        ConfigError(message.into())
    }

    /// The explanation, naming the option and its file.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}
