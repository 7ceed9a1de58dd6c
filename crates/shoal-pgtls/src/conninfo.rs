//! [`split_conninfo`]: libpq's TLS options taken out of a connection
//! string, a URL or `keyword=value` pairs, before tokio-postgres parses
//! the rest (it refuses `sslrootcert`, `sslcert`, `sslkey` and every mode
//! past `require`).

use std::path::PathBuf;

use crate::error::ConfigError;
use crate::mode::SslMode;
use crate::options::{Env, Spelling, TlsOptions, TlsSettings};

/// A connection string with its TLS options taken out.
#[derive(Debug, PartialEq, Eq)]
pub struct Split {
    /// The connection string without `sslmode`, `sslrootcert`, `sslcert`
    /// and `sslkey`, the rest byte for byte as given: what
    /// `tokio_postgres::Config` parses.
    pub conninfo: String,
    /// The TLS options it gave, completed from the environment.
    pub tls: TlsOptions,
}

/// Takes libpq's TLS options out of a connection string and fills those it
/// does not give from libpq's environment variables (see
/// [`TlsSettings::resolve`]; the string wins, option by option).
///
/// The string is what libpq accepts: a URL (`postgres://` or
/// `postgresql://`, options as percent-encoded query parameters, each at
/// most once) or `keyword=value` pairs (whitespace between pairs and around
/// `=`, a value in single quotes may hold spaces, a backslash escapes the
/// next character, the last of a repeated keyword wins).
pub fn split_conninfo(conninfo: &str, env: Env<'_>) -> Result<Split, ConfigError> {
    let is_url = conninfo.split_once("://").is_some_and(|(scheme, _)| {
        scheme.eq_ignore_ascii_case("postgres") || scheme.eq_ignore_ascii_case("postgresql")
    });
    let ((conninfo, given), spelling) =
        if is_url { (split_url(conninfo)?, Spelling::Url) } else { (split_pairs(conninfo)?, Spelling::Conninfo) };
    Ok(Split { conninfo, tls: given.resolve(spelling, env)? })
}

/// A URL's query parameters: the TLS options out, the rest kept.
fn split_url(url: &str) -> Result<(String, TlsSettings), ConfigError> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut given = TlsSettings::default();
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|v| v.into_owned())
                .map_err(|_| ConfigError::new(format!("URL parameter {key} is not UTF-8 after percent-decoding")))
        };
        let once = |slot: &mut Option<PathBuf>, path: String| match slot.replace(PathBuf::from(path)) {
            Some(_) => Err(ConfigError::new(format!("{key} is given twice in the URL"))),
            None => Ok(()),
        };
        match key {
            "sslmode" => {
                if given.sslmode.replace(SslMode::parse(&decode(value)?, key)?).is_some() {
                    return Err(ConfigError::new("sslmode is given twice in the URL"));
                }
            }
            "sslrootcert" => once(&mut given.sslrootcert, decode(value)?)?,
            "sslcert" => once(&mut given.sslcert, decode(value)?)?,
            "sslkey" => once(&mut given.sslkey, decode(value)?)?,
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
    Ok((rest, given))
}

/// `keyword=value` pairs: the TLS options out, the other pairs kept as
/// written.
fn split_pairs(conninfo: &str) -> Result<(String, TlsSettings), ConfigError> {
    let mut given = TlsSettings::default();
    let mut kept = Vec::new();
    let mut rest = conninfo.trim_start();
    while !rest.is_empty() {
        let pair_start = rest;
        let key_end = rest.find(|c: char| c == '=' || c.is_whitespace()).unwrap_or(rest.len());
        let key = &rest[..key_end];
        if key.is_empty() {
            return Err(ConfigError::new("invalid connection string: \"=\" without a keyword before it"));
        }
        rest = rest[key_end..].trim_start().strip_prefix('=').ok_or_else(|| {
            ConfigError::new(format!("invalid connection string: keyword \"{key}\" has no \"=\" after it"))
        })?;
        let (value, after) = read_value(rest.trim_start())?;
        let pair = &pair_start[..pair_start.len() - after.len()];
        rest = after.trim_start();
        match key {
            "sslmode" => given.sslmode = Some(SslMode::parse(&value, key)?),
            "sslrootcert" => given.sslrootcert = Some(value.into()),
            "sslcert" => given.sslcert = Some(value.into()),
            "sslkey" => given.sslkey = Some(value.into()),
            _ => kept.push(pair),
        }
    }
    Ok((kept.join(" "), given))
}

/// One value at the start of `s`, as libpq reads it, and what follows it.
fn read_value(s: &str) -> Result<(String, &str), ConfigError> {
    let mut value = String::new();
    let (text, quoted) = match s.strip_prefix('\'') {
        Some(inner) => (inner, true),
        None => (s, false),
    };
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\'' if quoted => return Ok((value, &text[i + 1..])),
            c if c.is_whitespace() && !quoted => return Ok((value, &text[i..])),
            '\\' => {
                if let Some((_, escaped)) = chars.next() {
                    value.push(escaped);
                }
            }
            c => value.push(c),
        }
    }
    if quoted {
        return Err(ConfigError::new("invalid connection string: a quoted value has no closing quote"));
    }
    Ok((value, ""))
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use super::*;
    use crate::options::tests::{env_of, no_env};
    use crate::options::FileSetting;

    fn url_file(name: &'static str, path: &str) -> Option<FileSetting> {
        Some(FileSetting::new(name, path))
    }

    #[test]
    fn tls_options_leave_the_url() {
        let s = split_conninfo(
            "postgres://u@h/db?options=-csearch_path%3Dx&sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem\
             &sslcert=%2Ftmp%2Fme.crt&sslkey=%2Ftmp%2Fme.key",
            &no_env,
        )
        .unwrap();
        assert_eq!(s.conninfo, "postgres://u@h/db?options=-csearch_path%3Dx");
        assert_eq!(s.tls.mode, SslMode::VerifyFull);
        assert_eq!(s.tls.root_cert, url_file("sslrootcert", "/tmp/ca.pem"));
        assert_eq!(s.tls.client_cert, url_file("sslcert", "/tmp/me.crt"));
        assert_eq!(s.tls.client_key, url_file("sslkey", "/tmp/me.key"));
        let s = split_conninfo("postgres://u@h/db?sslmode=disable", &no_env).unwrap();
        assert_eq!((s.conninfo.as_str(), s.tls.mode), ("postgres://u@h/db", SslMode::Disable));
        assert_eq!(split_conninfo("postgres://u@h/db", &no_env).unwrap().tls, TlsOptions::default());
        let s = split_conninfo("postgresql://u@h/db?sslmode=require", &no_env).unwrap();
        assert_eq!((s.conninfo.as_str(), s.tls.mode), ("postgresql://u@h/db", SslMode::Require));
    }

    #[test]
    fn bad_tls_options_are_config_errors() {
        for (url, needle) in [
            ("postgres://h/db?sslmode=verify_full", "invalid sslmode \"verify_full\""),
            ("postgres://h/db?sslmode=", "invalid sslmode \"\""),
            ("postgres://h/db?sslmode=allow", "sslmode=allow is not supported"),
            ("postgres://h/db?sslmode=require&sslmode=disable", "given twice"),
            ("postgres://h/db?sslrootcert=system", "system"),
            ("postgres://h/db?sslrootcert=", "empty"),
            ("postgres://h/db?sslmode=%FF", "not UTF-8"),
            ("postgres://h/db?sslcert=", "sslcert is empty"),
            ("postgres://h/db?sslkey=a&sslkey=b", "sslkey is given twice"),
        ] {
            let err = split_conninfo(url, &no_env).unwrap_err();
            assert!(err.message().contains(needle), "{url}: {err}");
        }
    }

    #[test]
    fn tls_options_leave_a_keyword_value_string() {
        let s = split_conninfo(
            "host=db port = 5432 sslmode=verify-full  sslrootcert='/etc/my ca.pem' user=app \
             sslcert=/etc/app.crt sslkey = /etc/app\\ key.pem application_name='it\\'s here'",
            &no_env,
        )
        .unwrap();
        assert_eq!(s.conninfo, "host=db port = 5432 user=app application_name='it\\'s here'");
        assert_eq!((s.tls.mode, s.tls.spelling), (SslMode::VerifyFull, Spelling::Conninfo));
        assert_eq!(s.tls.root_cert, url_file("sslrootcert", "/etc/my ca.pem"));
        assert_eq!(s.tls.client_cert, url_file("sslcert", "/etc/app.crt"));
        assert_eq!(s.tls.client_key, url_file("sslkey", "/etc/app key.pem"));
        let parsed: tokio_postgres::Config = s.conninfo.parse().unwrap();
        assert_eq!(parsed.get_application_name(), Some("it's here"));

        eprintln!("no TLS options: the string is kept; a repeated keyword: the last wins, as in libpq");
        let s = split_conninfo("host=127.0.0.1 port=5432 user=postgres dbname=test", &no_env).unwrap();
        assert_eq!(s.conninfo, "host=127.0.0.1 port=5432 user=postgres dbname=test");
        let s = split_conninfo("sslmode=disable host=h sslmode=require", &no_env).unwrap();
        assert_eq!((s.conninfo.as_str(), s.tls.mode), ("host=h", SslMode::Require));
    }

    #[test]
    fn bad_keyword_value_strings_are_config_errors() {
        for (conninfo, needle) in [
            ("host=h sslmode=verify_full", "invalid sslmode \"verify_full\""),
            ("host=h sslrootcert=''", "sslrootcert is empty"),
            ("host=h sslcert", "keyword \"sslcert\" has no \"=\""),
            ("host=h =x", "without a keyword"),
            ("host=h sslkey='/a b", "no closing quote"),
        ] {
            let err = split_conninfo(conninfo, &no_env).unwrap_err();
            assert!(err.message().contains(needle), "{conninfo}: {err}");
        }
    }

    #[test]
    fn the_environment_fills_what_the_url_leaves_unset() {
        let vars = [
            ("PGSSLMODE", "verify-full"),
            ("PGSSLROOTCERT", "/env/ca.pem"),
            ("PGSSLCERT", "/env/me.crt"),
            ("PGSSLKEY", "/env/me.key"),
            ("HOME", "/home/app"),
        ];
        let env = env_of(&vars);

        eprintln!("a URL without TLS options takes all four variables, and HOME for the defaults");
        let s = split_conninfo("postgres://u@h/db?application_name=x", &env).unwrap();
        assert_eq!(s.conninfo, "postgres://u@h/db?application_name=x");
        assert_eq!((s.tls.mode, s.tls.mode_from_env), (SslMode::VerifyFull, true));
        assert_eq!(s.tls.root_cert, Some(FileSetting { path: "/env/ca.pem".into(), name: "PGSSLROOTCERT" }));
        assert_eq!(s.tls.client_cert, Some(FileSetting { path: "/env/me.crt".into(), name: "PGSSLCERT" }));
        assert_eq!(s.tls.client_key, Some(FileSetting { path: "/env/me.key".into(), name: "PGSSLKEY" }));
        assert_eq!(s.tls.home, Some(PathBuf::from("/home/app")));

        eprintln!("the URL wins, option by option, as in libpq");
        let s = split_conninfo("postgres://u@h/db?sslmode=disable&sslcert=/url/me.crt", &env).unwrap();
        assert_eq!((s.tls.mode, s.tls.mode_from_env), (SslMode::Disable, false));
        assert_eq!(s.tls.client_cert, url_file("sslcert", "/url/me.crt"));
        assert_eq!(s.tls.client_key, Some(FileSetting { path: "/env/me.key".into(), name: "PGSSLKEY" }));
        assert_eq!(s.tls.root_cert, Some(FileSetting { path: "/env/ca.pem".into(), name: "PGSSLROOTCERT" }));

        eprintln!("so does a keyword=value string");
        let s = split_conninfo("host=h sslmode=require", &env).unwrap();
        assert_eq!((s.tls.mode, s.tls.mode_from_env), (SslMode::Require, false));
        assert_eq!(s.tls.client_cert, Some(FileSetting { path: "/env/me.crt".into(), name: "PGSSLCERT" }));
    }

    #[test]
    fn bad_environment_variables_are_config_errors_naming_them() {
        for (var, value, needle) in [
            ("PGSSLMODE", "verify_full", "invalid PGSSLMODE \"verify_full\""),
            ("PGSSLMODE", "", "invalid PGSSLMODE \"\""),
            ("PGSSLMODE", "allow", "PGSSLMODE=allow is not supported"),
            ("PGSSLROOTCERT", "system", "PGSSLROOTCERT=system is not supported"),
            ("PGSSLROOTCERT", "", "PGSSLROOTCERT is set but empty"),
            ("PGSSLCERT", "", "PGSSLCERT is set but empty"),
            ("PGSSLKEY", "", "PGSSLKEY is set but empty"),
        ] {
            let vars = [(var, value)];
            let err = split_conninfo("postgres://u@h/db", &env_of(&vars)).unwrap_err();
            assert!(err.message().contains(needle), "{var}={value}: {err}");
        }

        eprintln!("a bad variable the URL overrides is never looked at");
        let vars = [("PGSSLMODE", "bogus"), ("PGSSLCERT", "")];
        let s = split_conninfo("postgres://u@h/db?sslmode=require&sslcert=/url/me.crt", &env_of(&vars)).unwrap();
        assert_eq!(s.tls.mode, SslMode::Require);

        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStringExt;
            let invalid = |name: &str| (name == "PGSSLMODE").then(|| OsString::from_vec(vec![0xff]));
            let err = split_conninfo("postgres://u@h/db", &invalid).unwrap_err();
            assert!(err.message().contains("PGSSLMODE is not UTF-8"), "{err}");
        }
    }
}
