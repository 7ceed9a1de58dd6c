//! Authentication policy.
//!
//! Two modes, chosen by [`crate::WireConfig::password`]:
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

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use pgwire::api::auth::sasl::scram::{gen_salted_password, ScramAuth, SCRAM_ITERATIONS};
use pgwire::api::auth::{AuthSource, LoginInfo, Password};
use pgwire::error::PgWireResult;
use shoal_common::{Error, SqlState};

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
}
