//! The options as given ([`TlsSettings`]), completed from libpq's
//! environment variables ([`TlsOptions`]), and how messages name them
//! ([`Spelling`]).

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::ConfigError;
use crate::mode::SslMode;

/// The environment as [`TlsSettings::resolve`] reads it: a variable's
/// value, if set. The process environment is [`process_env`]; tests pass
/// their own, so they never touch (and race on) the process's.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<OsString>;

/// The process environment, for [`Env`]: `std::env::var_os`.
pub fn process_env(name: &str) -> Option<OsString> {
    std::env::var_os(name)
}

/// One of libpq's four TLS options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Param {
    Mode,
    RootCert,
    Cert,
    Key,
}

impl Param {
    /// libpq's keyword: `sslcert`.
    pub(crate) fn keyword(self) -> &'static str {
        match self {
            Param::Mode => "sslmode",
            Param::RootCert => "sslrootcert",
            Param::Cert => "sslcert",
            Param::Key => "sslkey",
        }
    }

    /// The command-line flag: `--sslcert`.
    fn flag(self) -> &'static str {
        match self {
            Param::Mode => "--sslmode",
            Param::RootCert => "--sslrootcert",
            Param::Cert => "--sslcert",
            Param::Key => "--sslkey",
        }
    }

    /// libpq's environment variable: `PGSSLCERT`.
    pub(crate) fn variable(self) -> &'static str {
        match self {
            Param::Mode => "PGSSLMODE",
            Param::RootCert => "PGSSLROOTCERT",
            Param::Cert => "PGSSLCERT",
            Param::Key => "PGSSLKEY",
        }
    }

    /// What the option's value is, for messages.
    fn what(self) -> &'static str {
        match self {
            Param::Mode => "disable, prefer, require, verify-ca or verify-full",
            Param::RootCert => "a PEM file of CA certificates",
            Param::Cert => "a PEM file with the client certificate",
            Param::Key => "a PEM file with the client certificate's key",
        }
    }
}

/// Where the user writes the options, so that every message says how to
/// change them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Spelling {
    /// Query parameters of a `postgres://` URL: `…?sslmode=require&sslcert=…`.
    #[default]
    Url,
    /// `keyword=value` pairs of a libpq connection string:
    /// `host=db sslmode=require sslcert=…`.
    Conninfo,
    /// Command-line flags: `--sslmode require --sslcert …`.
    Flags,
}

impl Spelling {
    /// The option's name as the user writes it: `sslcert` or `--sslcert`.
    pub(crate) fn name(self, param: Param) -> &'static str {
        match self {
            Spelling::Url | Spelling::Conninfo => param.keyword(),
            Spelling::Flags => param.flag(),
        }
    }

    /// How to give `param`: "add sslkey=<PEM file> to the URL", "give
    /// --sslkey <PEM file>".
    pub(crate) fn add(self, param: Param) -> String {
        let value = if param == Param::Mode { "<mode>" } else { "<PEM file>" };
        match self {
            Spelling::Url => format!("add {}={value} to the URL", param.keyword()),
            Spelling::Conninfo => format!("add {}={value} to the connection string", param.keyword()),
            Spelling::Flags => format!("give {} {value}", param.flag()),
        }
    }

    /// `sslmode=require`, `--sslmode=require` or `PGSSLMODE=require`: the
    /// mode as the user set it.
    pub(crate) fn mode_setting(self, mode: SslMode, from_env: bool) -> String {
        let name = if from_env { Param::Mode.variable() } else { self.name(Param::Mode) };
        format!("{name}={mode}")
    }
}

/// A file named by an option or by libpq's environment variable for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FileSetting {
    pub path: PathBuf,
    /// What named it, for messages: the option as spelled (`sslcert`,
    /// `--sslcert`) or the variable (`PGSSLCERT`).
    pub name: &'static str,
}

impl FileSetting {
    pub(crate) fn new(name: &'static str, path: impl Into<PathBuf>) -> FileSetting {
        FileSetting { path: path.into(), name }
    }
}

impl fmt::Display for FileSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, self.path.display())
    }
}

/// libpq's four TLS options as the user gave them — in a URL, a
/// connection string or as command-line flags — before the environment
/// fills in; `None` where not given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// `sslmode`: whether to use TLS and what to check.
    pub sslmode: Option<SslMode>,
    /// `sslrootcert`: a PEM file of CA certificates to check the server against.
    pub sslrootcert: Option<PathBuf>,
    /// `sslcert`: a PEM file with the client certificate chain, leaf first.
    pub sslcert: Option<PathBuf>,
    /// `sslkey`: a PEM file with the client certificate's private key.
    pub sslkey: Option<PathBuf>,
}

impl TlsSettings {
    /// Fills what is not given from libpq's environment variables
    /// (`PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT`, `PGSSLKEY`; what is given
    /// wins, option by option, as in libpq) and checks each value: an
    /// empty path or variable, an unknown mode or `sslrootcert=system` is a
    /// [`ConfigError`] naming the option as `spelling` writes it, or the
    /// variable. `HOME` locates libpq's default files. Files are read later,
    /// by [`crate::Tls::new`].
    pub fn resolve(self, spelling: Spelling, env: Env<'_>) -> Result<TlsOptions, ConfigError> {
        let (mode, mode_from_env) = match (self.sslmode, env(Param::Mode.variable())) {
            (Some(mode), _) => (mode, false),
            (None, None) => (SslMode::default(), false),
            (None, Some(value)) => {
                let value = value.into_string().map_err(|_| ConfigError::new("PGSSLMODE is not UTF-8"))?;
                (SslMode::parse(&value, Param::Mode.variable())?, true)
            }
        };
        let file = |given: Option<PathBuf>, param: Param| match given {
            Some(path) if path.as_os_str().is_empty() => {
                Err(ConfigError::new(format!("{} is empty (give the path of {})", spelling.name(param), param.what())))
            }
            Some(path) => Ok(Some(FileSetting::new(spelling.name(param), path))),
            None => match env(param.variable()) {
                None => Ok(None),
                Some(value) if value.is_empty() => Err(ConfigError::new(format!(
                    "{} is set but empty (give the path of {}, or unset it)",
                    param.variable(),
                    param.what()
                ))),
                Some(value) => Ok(Some(FileSetting::new(param.variable(), value))),
            },
        };
        let root_cert = file(self.sslrootcert, Param::RootCert)?;
        if let Some(root) = &root_cert {
            check_root_cert(&root.path, root.name)?;
        }
        Ok(TlsOptions {
            mode,
            mode_from_env,
            spelling,
            root_cert,
            client_cert: file(self.sslcert, Param::Cert)?,
            client_key: file(self.sslkey, Param::Key)?,
            home: env("HOME").map(PathBuf::from),
        })
    }
}

/// What a CA file option must not be: `system` (no system store is read).
pub(crate) fn check_root_cert(path: &Path, name: &str) -> Result<(), ConfigError> {
    if path == Path::new("system") {
        return Err(ConfigError::new(format!(
            "{name}=system is not supported: Shoal's clients read no system certificate store; \
             give the path of a PEM file of CA certificates"
        )));
    }
    Ok(())
}

/// The TLS options, given or from the environment, checked but with their
/// files not yet read (that is [`crate::Tls::new`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsOptions {
    pub(crate) mode: SslMode,
    /// The mode came from `PGSSLMODE` (for messages).
    pub(crate) mode_from_env: bool,
    /// How the user writes the options (for messages).
    pub(crate) spelling: Spelling,
    /// `sslrootcert`: CA certificates to check the server against.
    pub(crate) root_cert: Option<FileSetting>,
    /// `sslcert`: the client certificate chain, leaf first.
    pub(crate) client_cert: Option<FileSetting>,
    /// `sslkey`: the client certificate's private key.
    pub(crate) client_key: Option<FileSetting>,
    /// `$HOME`, where libpq's default files live (`~/.postgresql/…`).
    pub(crate) home: Option<PathBuf>,
}

impl TlsOptions {
    /// The `sslmode` in force.
    pub fn mode(&self) -> SslMode {
        self.mode
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An empty environment.
    pub fn no_env(_: &str) -> Option<OsString> {
        None
    }

    /// An environment holding exactly `vars`.
    pub fn env_of<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| OsString::from(v))
    }

    fn flags(mode: Option<SslMode>, cert: Option<&str>) -> TlsSettings {
        TlsSettings { sslmode: mode, sslcert: cert.map(PathBuf::from), ..TlsSettings::default() }
    }

    #[test]
    fn nothing_given_and_no_environment_is_prefer() {
        let options = TlsSettings::default().resolve(Spelling::Flags, &no_env).unwrap();
        assert_eq!(options, TlsOptions { spelling: Spelling::Flags, ..TlsOptions::default() });
        assert_eq!(options.mode(), SslMode::Prefer);
    }

    #[test]
    fn flags_win_over_the_environment_and_are_named_as_flags() {
        let vars = [("PGSSLMODE", "verify-full"), ("PGSSLCERT", "/env/me.crt"), ("PGSSLKEY", "/env/me.key")];
        let options = flags(Some(SslMode::Require), Some("/flag/me.crt")).resolve(Spelling::Flags, &env_of(&vars));
        let options = options.unwrap();
        assert_eq!((options.mode, options.mode_from_env), (SslMode::Require, false));
        assert_eq!(options.client_cert, Some(FileSetting::new("--sslcert", "/flag/me.crt")));
        assert_eq!(options.client_key, Some(FileSetting::new("PGSSLKEY", "/env/me.key")));
        assert_eq!(Spelling::Flags.mode_setting(options.mode, options.mode_from_env), "--sslmode=require");

        eprintln!("without the flag, the variable sets the mode and messages say so");
        let options = flags(None, None).resolve(Spelling::Flags, &env_of(&vars)).unwrap();
        assert_eq!(Spelling::Flags.mode_setting(options.mode, options.mode_from_env), "PGSSLMODE=verify-full");
    }

    #[test]
    fn bad_flags_are_config_errors_naming_the_flag() {
        for (given, needle) in [
            (flags(None, Some("")), "--sslcert is empty"),
            (TlsSettings { sslkey: Some(PathBuf::new()), ..TlsSettings::default() }, "--sslkey is empty"),
            (TlsSettings { sslrootcert: Some("system".into()), ..TlsSettings::default() }, "--sslrootcert=system"),
        ] {
            let err = given.clone().resolve(Spelling::Flags, &no_env).unwrap_err();
            assert!(err.message().contains(needle), "{given:?}: {err}");
        }
    }

    #[test]
    fn spellings_say_how_to_give_an_option() {
        assert_eq!(Spelling::Url.add(Param::Key), "add sslkey=<PEM file> to the URL");
        assert_eq!(Spelling::Conninfo.add(Param::Key), "add sslkey=<PEM file> to the connection string");
        assert_eq!(Spelling::Flags.add(Param::Key), "give --sslkey <PEM file>");
        assert_eq!(Spelling::Url.mode_setting(SslMode::VerifyCa, false), "sslmode=verify-ca");
    }
}
