//! Authentication policy: who may log in, and how.
//!
//! [`AuthMethod`] (`shoal server --auth`) picks how a client proves who it
//! is; [`crate::WireConfig::password`], [`crate::TlsFiles::client_ca`] and
//! [`crate::WireConfig::tls_required`] complete the picture. After the
//! StartupMessage, `Policy::login` decides — without I/O, so every case
//! is unit-tested — whether the client is refused, logged in, or must run
//! SCRAM-SHA-256:
//!
//! ```text
//!   --auth             plain connection               TLS, no certificate     TLS, certificate (CA-signed, CN = user)
//!   ────────────────   ────────────────────────────   ─────────────────────   ───────────────────────────────────────
//!   password (dflt)    SCRAM with --password;         like plain; with a      like plain: the certificate is an
//!                      without: loopback only         client CA: FATAL 28000  extra check, not a login
//!   cert               FATAL 28000 (needs TLS)        FATAL 28000             logged in, no password
//!   cert-or-password   SCRAM                          SCRAM                   logged in, no password
//!
//!   any method         with --tls-required a plain connection is FATAL 28000 before anything else;
//!                      a certificate for another user (CN ≠ user, or no CN) is FATAL 28000 — never a
//!                      reason to fall back to the password; a certificate logs in only the server's
//!                      one user (--user), as the password does
//! ```
//!
//! * **password set** — SCRAM-SHA-256 for the configured user, using pgwire's
//!   SCRAM state machine. Any other user name goes through the same exchange
//!   against a random mock secret, so the client cannot tell "no such user"
//!   from "wrong password": both end in `28P01 password authentication failed
//!   for user "…"`, PostgreSQL's exact wording.
//! * **no password** — trust, but only for loopback clients (see
//!   [`is_loopback`]); anyone else gets `28000` telling the operator to set a
//!   password. An unauthenticated database must never be reachable from the
//!   network by accident.
//! * **certificate** (`cert`, `cert-or-password`) — PostgreSQL's `cert`
//!   method: the certificate rustls verified against the client CA, whose
//!   subject CN is the user, is the login. `cert` accepts nothing else;
//!   `cert-or-password` lets a client without a certificate use the
//!   password instead. Both need a client CA, and `cert-or-password` a
//!   password ([`crate::WireConfig::check`]).
//!
//! Cancel requests are outside all of this, as in PostgreSQL: they arrive
//! on a connection of their own, often plain even when the session is
//! encrypted (libpq before 17, pgjdbc), and carry no user; the secret key
//! from BackendKeyData is their authentication (`cancel.rs`).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use pgwire::api::auth::sasl::scram::{gen_salted_password, ScramAuth, SCRAM_ITERATIONS};
use pgwire::api::auth::{AuthSource, LoginInfo, Password};
use pgwire::error::PgWireResult;
use shoal_common::{Error, SqlState};

use crate::tls::{self, ClientCert};

/// How clients prove who they are (module docs have the whole table).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuthMethod {
    /// SCRAM-SHA-256 with the configured password; without one, loopback
    /// clients only. A client certificate, when the server asks for one, is
    /// checked in addition.
    #[default]
    Password,
    /// A client certificate the client CA signed, whose CN is the user, and
    /// nothing else: plain connections and TLS without a certificate are
    /// refused, loopback included.
    Cert,
    /// Such a certificate logs in without a password; a client without one
    /// authenticates with the password.
    CertOrPassword,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Password => "password",
            AuthMethod::Cert => "cert",
            AuthMethod::CertOrPassword => "cert-or-password",
        }
    }

    /// A certificate can log a client in.
    pub fn accepts_certificates(self) -> bool {
        matches!(self, AuthMethod::Cert | AuthMethod::CertOrPassword)
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AuthMethod {
    type Err = Error;

    fn from_str(s: &str) -> Result<AuthMethod, Error> {
        match s {
            "password" => Ok(AuthMethod::Password),
            "cert" => Ok(AuthMethod::Cert),
            "cert-or-password" => Ok(AuthMethod::CertOrPassword),
            other => Err(Error::new(
                SqlState::INVALID_PARAMETER_VALUE,
                format!("invalid authentication method \"{other}\" (expected password, cert or cert-or-password)"),
            )),
        }
    }
}

/// What a client must still do after its StartupMessage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Login {
    /// Nothing: its certificate proved the user, or it is a loopback client
    /// of a server without a password.
    Done,
    /// The SCRAM-SHA-256 exchange for the configured password.
    Scram,
}

/// The login rules of one listener, from its [`crate::WireConfig`].
#[derive(Clone, Debug)]
pub(crate) struct Policy {
    pub method: AuthMethod,
    /// The one user a certificate (or the password) logs in as.
    pub user: String,
    /// Plain connections are refused.
    pub tls_required: bool,
    /// TLS clients are asked for a certificate (a client CA is configured).
    pub client_certs: bool,
    /// A password is configured.
    pub password: bool,
}

impl Policy {
    /// Decides a client's login. `cert` is what its TLS handshake proved, or
    /// `None` for a plain connection; `peer` is its address. Every refusal
    /// is a FATAL `28000` that says what to fix.
    pub(crate) fn login(&self, cert: Option<&ClientCert>, user: &str, peer: IpAddr) -> Result<Login, Error> {
        let Some(cert) = cert else {
            if self.tls_required {
                return Err(tls_required_refused(peer));
            }
            return match self.method {
                AuthMethod::Cert => Err(certificate_needs_tls(user)),
                AuthMethod::Password | AuthMethod::CertOrPassword => self.password_or_loopback(peer),
            };
        };
        if !self.client_certs {
            // Nobody was asked for a certificate. `WireConfig::check`
            // refuses the certificate methods without a client CA; should
            // one get here anyway, it logs nobody in by certificate.
            return match self.method {
                AuthMethod::Cert => Err(tls::certificate_missing(user)),
                AuthMethod::Password | AuthMethod::CertOrPassword => self.password_or_loopback(peer),
            };
        }
        match (self.method, cert) {
            (AuthMethod::CertOrPassword, ClientCert::Absent) => self.password_or_loopback(peer),
            (AuthMethod::Password, cert) => {
                tls::check_client_cert(cert, user)?;
                self.password_or_loopback(peer)
            }
            (AuthMethod::Cert | AuthMethod::CertOrPassword, cert) => self.certificate_login(cert, user),
        }
    }

    /// The certificate as the login: its CN must be the user, and the user
    /// the server's one user (SCRAM refuses other names too).
    fn certificate_login(&self, cert: &ClientCert, user: &str) -> Result<Login, Error> {
        tls::check_client_cert(cert, user)?;
        if user != self.user {
            return Err(Error::new(
                SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
                format!("certificate authentication failed for user \"{user}\": no such user"),
            )
            .with_hint(
                "This server has one user (its --user option): connect as that user, with a certificate whose CN \
                 names it.",
            ));
        }
        Ok(Login::Done)
    }

    /// The `password` method's rule: SCRAM when a password is set, else
    /// trust for loopback clients only.
    fn password_or_loopback(&self, peer: IpAddr) -> Result<Login, Error> {
        match (self.password, is_loopback(peer)) {
            (true, _) => Ok(Login::Scram),
            (false, true) => Ok(Login::Done),
            (false, false) => Err(remote_trust_refused(peer)),
        }
    }
}

/// The `28000` refusal of a plain connection by a server that requires TLS.
fn tls_required_refused(addr: IpAddr) -> Error {
    Error::new(
        SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
        format!("connection from {addr} refused: this server requires TLS, and the connection is not encrypted"),
    )
    .with_hint(
        "Connect with TLS (libpq, psql and shoal-orm: sslmode=require, verify-ca or verify-full; \
         the default sslmode=prefer uses TLS when the server offers it).",
    )
}

/// The `28000` refusal of a plain connection by a server whose only login
/// is a client certificate.
fn certificate_needs_tls(user: &str) -> Error {
    Error::new(
        SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
        "connection requires a valid client certificate, which needs TLS: the connection is not encrypted",
    )
    .with_hint(format!(
        "This server logs users in by client certificate only (--auth cert): connect with TLS \
         (sslmode=require or stricter) and a certificate signed by its client CA whose common name (CN) is \
         \"{user}\" (libpq and shoal-orm: sslcert and sslkey)."
    ))
}

/// True for clients on this machine: `127.0.0.0/8`, `::1`, and IPv4-mapped
/// loopback (`::ffff:127.0.0.1`, what a dual-stack listener reports).
pub fn is_loopback(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

/// The `28000` refusal for a remote client when no password is configured.
pub fn remote_trust_refused(addr: IpAddr) -> Error {
    Error::new(
        SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
        format!("connection from {addr} refused: Shoal has no password set, so it only accepts connections from this machine"),
    )
    .with_hint("Set a password (server option --password) to accept remote clients; they must then authenticate with SCRAM-SHA-256.")
}

/// The `28P01` failure, worded exactly as PostgreSQL words it.
pub fn password_failed(user: &str) -> Error {
    Error::new(SqlState::INVALID_PASSWORD, format!("password authentication failed for user \"{user}\""))
}

/// SCRAM credentials: the salted password of the one configured user, and a
/// mock for every other name.
pub(crate) struct ScramSource {
    user: String,
    real: Password,
    mock: Password,
}

impl fmt::Debug for ScramSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramSource").field("user", &self.user).finish_non_exhaustive()
    }
}

/// 16 bytes that are hard to predict, from std's randomly keyed hasher.
fn random_bytes(label: &str) -> Vec<u8> {
    use std::hash::{BuildHasher, RandomState};
    let state = RandomState::new();
    let mut out = state.hash_one(label).to_be_bytes().to_vec();
    out.extend_from_slice(&state.hash_one((label, 1u8)).to_be_bytes());
    out
}

/// Builds pgwire's SCRAM mechanism for `user`/`password`. Salting costs
/// 4096 PBKDF2 rounds, so it is done once here, not per connection.
pub(crate) fn scram_auth(user: &str, password: &str) -> ScramAuth {
    let salt = random_bytes("salt");
    let real = Password::new(Some(salt.clone()), gen_salted_password(password, &salt, SCRAM_ITERATIONS));
    let mock_salt = random_bytes("mock-salt");
    let mock_password = format!("{:x?}", random_bytes("mock-password"));
    let mock =
        Password::new(Some(mock_salt.clone()), gen_salted_password(&mock_password, &mock_salt, SCRAM_ITERATIONS));
    let mut auth = ScramAuth::new(Arc::new(ScramSource { user: user.to_string(), real, mock }));
    auth.set_iterations(SCRAM_ITERATIONS);
    auth
}

#[async_trait]
impl AuthSource for ScramSource {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        Ok(if login.user() == Some(self.user.as_str()) { self.real.clone() } else { self.mock.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_rule() {
        for ok in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"] {
            assert!(is_loopback(ok.parse().unwrap()), "{ok}");
        }
        for remote in ["10.0.0.1", "192.168.1.5", "::ffff:10.0.0.1", "2001:db8::1", "0.0.0.0", "::"] {
            assert!(!is_loopback(remote.parse().unwrap()), "{remote}");
        }
        let err = remote_trust_refused("10.0.0.1".parse().unwrap());
        assert_eq!(err.code, SqlState::INVALID_AUTHORIZATION_SPECIFICATION);
        assert!(err.hint.unwrap().contains("password"));
    }

    const LOOPBACK: &str = "127.0.0.1";
    const REMOTE: &str = "192.0.2.7";

    fn policy(method: AuthMethod, tls_required: bool, password: bool) -> Policy {
        Policy { method, user: "alice".into(), tls_required, client_certs: true, password }
    }

    fn cert(cn: &str) -> ClientCert {
        ClientCert::Verified { common_name: Some(cn.to_string()) }
    }

    /// The login of user "alice" from `peer`; a refusal as its message.
    fn login(policy: &Policy, cert: Option<&ClientCert>, peer: &str) -> Result<Login, String> {
        policy.login(cert, "alice", peer.parse().unwrap()).map_err(|err| {
            assert_eq!(err.code, SqlState::INVALID_AUTHORIZATION_SPECIFICATION, "{}", err.message);
            assert!(err.hint.is_some(), "every refusal says what to fix: {}", err.message);
            err.message
        })
    }

    fn refused(result: Result<Login, String>, needle: &str) {
        match result {
            Err(message) => assert!(message.contains(needle), "{message}"),
            Ok(login) => panic!("expected a refusal containing {needle:?}, got {login:?}"),
        }
    }

    #[test]
    fn password_method_keeps_the_certificate_an_extra_check() {
        let (alice, bob, none) = (cert("alice"), cert("bob"), ClientCert::Absent);
        let with_password = policy(AuthMethod::Password, false, true);
        for peer in [LOOPBACK, REMOTE] {
            assert_eq!(login(&with_password, None, peer), Ok(Login::Scram));
            assert_eq!(login(&with_password, Some(&alice), peer), Ok(Login::Scram));
            refused(login(&with_password, Some(&none), peer), "requires a valid client certificate");
            refused(login(&with_password, Some(&bob), peer), "is \"bob\"");
        }
        let without = policy(AuthMethod::Password, false, false);
        assert_eq!(login(&without, None, LOOPBACK), Ok(Login::Done));
        assert_eq!(login(&without, Some(&alice), LOOPBACK), Ok(Login::Done));
        refused(login(&without, None, REMOTE), "only accepts connections from this machine");
        refused(login(&without, Some(&alice), REMOTE), "only accepts connections from this machine");
    }

    #[test]
    fn cert_method_logs_in_by_certificate_only() {
        let cert_only = policy(AuthMethod::Cert, false, false);
        for peer in [LOOPBACK, REMOTE] {
            assert_eq!(login(&cert_only, Some(&cert("alice")), peer), Ok(Login::Done));
            refused(login(&cert_only, None, peer), "which needs TLS");
            refused(login(&cert_only, Some(&ClientCert::Absent), peer), "requires a valid client certificate");
            refused(login(&cert_only, Some(&cert("bob")), peer), "is \"bob\"");
            let nameless = ClientCert::Verified { common_name: None };
            refused(login(&cert_only, Some(&nameless), peer), "no common name");
            eprintln!("a certificate naming a user the server does not have logs nobody in");
            let carol = Policy { user: "carol".into(), ..cert_only.clone() };
            refused(login(&carol, Some(&cert("alice")), peer), "for user \"alice\": no such user");
        }
        eprintln!("without a client CA (a misconfiguration check() refuses) nobody logs in by certificate");
        let no_ca = Policy { client_certs: false, ..cert_only.clone() };
        refused(login(&no_ca, Some(&ClientCert::Absent), LOOPBACK), "requires a valid client certificate");
    }

    #[test]
    fn cert_or_password_falls_back_only_without_a_certificate() {
        let either = policy(AuthMethod::CertOrPassword, false, true);
        for peer in [LOOPBACK, REMOTE] {
            assert_eq!(login(&either, Some(&cert("alice")), peer), Ok(Login::Done));
            assert_eq!(login(&either, Some(&ClientCert::Absent), peer), Ok(Login::Scram));
            assert_eq!(login(&either, None, peer), Ok(Login::Scram));
            refused(login(&either, Some(&cert("bob")), peer), "is \"bob\"");
            let carol = Policy { user: "carol".into(), ..either.clone() };
            refused(login(&carol, Some(&cert("alice")), peer), "no such user");
        }
    }

    #[test]
    fn tls_required_refuses_every_plain_connection_first() {
        for method in [AuthMethod::Password, AuthMethod::Cert, AuthMethod::CertOrPassword] {
            for password in [false, true] {
                let required = policy(method, true, password);
                for peer in [LOOPBACK, REMOTE] {
                    refused(login(&required, None, peer), "this server requires TLS");
                }
                if method.accepts_certificates() {
                    assert_eq!(login(&required, Some(&cert("alice")), REMOTE), Ok(Login::Done), "{method}");
                }
            }
        }
        let required = policy(AuthMethod::Password, true, false);
        assert_eq!(login(&required, Some(&cert("alice")), LOOPBACK), Ok(Login::Done));
    }

    #[test]
    fn auth_methods_parse_by_name() {
        for method in [AuthMethod::Password, AuthMethod::Cert, AuthMethod::CertOrPassword] {
            assert_eq!(method.as_str().parse::<AuthMethod>().unwrap(), method);
        }
        let err = "trust".parse::<AuthMethod>().unwrap_err();
        assert_eq!(err.code, SqlState::INVALID_PARAMETER_VALUE);
        assert!(err.message.contains("\"trust\"") && err.message.contains("cert-or-password"), "{}", err.message);
    }
}
