//! Node configuration: command-line flags and the same settings in a TOML file.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use shoal_common::{Error, Result, SqlState};

pub use shoal_pgwire::AuthMethod;
pub use shoal_raft::NodeTlsFiles;

/// How often groups snapshot by default (entries between snapshots).
pub const DEFAULT_SNAPSHOT_EVERY: u64 = shoal_raft::DEFAULT_SNAPSHOT_EVERY;

/// Everything a node needs to start.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    pub pg_addr: SocketAddr,
    pub rpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub join: Option<SocketAddr>,
    pub user: String,
    pub password: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// CA (PEM) that TLS clients' certificates must chain to; a client's
    /// certificate must also name its user as CN. Needs `tls_cert`; the
    /// certificate methods of `auth` need it.
    pub tls_client_ca: Option<PathBuf>,
    /// Refuse plain connections from every client, loopback included
    /// (cancel requests excepted). Needs `tls_cert`.
    pub tls_required: bool,
    /// How clients log in: password (SCRAM, or loopback trust without one),
    /// or a client certificate (`shoal_pgwire::auth` has the table).
    pub auth: AuthMethod,
    /// fsync the Raft log before acknowledging writes. Only tests turn it off.
    pub fsync: bool,
    /// Snapshot each group (and compact its log) every this many entries.
    pub snapshot_every: u64,
    /// TLS between nodes (certificate, key, cluster CA); `None`: plain TCP.
    pub rpc_tls: Option<shoal_raft::NodeTlsFiles>,
    /// Threads of the process's async runtime; `None`: one per CPU. Read by
    /// the binary when it builds the runtime, before the server starts.
    pub worker_threads: Option<u16>,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            data_dir: PathBuf::from("./data"),
            pg_addr: SocketAddr::from(([127, 0, 0, 1], 5433)),
            rpc_addr: SocketAddr::from(([127, 0, 0, 1], 5434)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 5480)),
            join: None,
            user: "shoal".into(),
            password: None,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            tls_required: false,
            auth: AuthMethod::Password,
            fsync: true,
            snapshot_every: DEFAULT_SNAPSHOT_EVERY,
            rpc_tls: None,
            worker_threads: None,
        }
    }
}

/// The TOML file: every key optional, same names as the flags.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ConfigFile {
    pub data: Option<PathBuf>,
    pub pg: Option<SocketAddr>,
    pub rpc: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
    pub join: Option<SocketAddr>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_client_ca: Option<PathBuf>,
    pub tls_required: Option<bool>,
    #[serde(default, deserialize_with = "auth_method")]
    pub auth: Option<AuthMethod>,
    pub snapshot_every: Option<u64>,
    pub rpc_tls_cert: Option<PathBuf>,
    pub rpc_tls_key: Option<PathBuf>,
    pub rpc_tls_ca: Option<PathBuf>,
    pub worker_threads: Option<u16>,
}

impl ConfigFile {
    /// Reads and parses a TOML config file, naming the file in any error.
    pub fn load(path: &std::path::Path) -> Result<ConfigFile> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::new(SqlState::INVALID_PARAMETER_VALUE, format!("cannot read config file {}: {e}", path.display()))
        })?;
        ConfigFile::parse(&text).map_err(|e| Error::new(e.code, format!("{}: {}", path.display(), e.message)))
    }

    /// Parses TOML text.
    pub fn parse(text: &str) -> Result<ConfigFile> {
        let file: ConfigFile = toml::from_str(text)
            .map_err(|e| Error::new(SqlState::INVALID_PARAMETER_VALUE, format!("invalid config: {e}")))?;
        if file.worker_threads == Some(0) {
            return Err(Error::new(
                SqlState::INVALID_PARAMETER_VALUE,
                "invalid config: worker-threads must be at least 1",
            ));
        }
        let tls = [&file.rpc_tls_cert, &file.rpc_tls_key, &file.rpc_tls_ca];
        let given = tls.iter().filter(|v| v.is_some()).count();
        if given != 0 && given != tls.len() {
            return Err(Error::new(
                SqlState::INVALID_PARAMETER_VALUE,
                "invalid config: rpc-tls-cert, rpc-tls-key and rpc-tls-ca go together (all three or none)",
            ));
        }
        Ok(file)
    }

    /// Applies the file's settings under the command line's: a flag given on
    /// the command line wins over the file.
    pub fn apply_to(&self, config: &mut ServerConfig, explicit: &ExplicitFlags) {
        if let (Some(v), false) = (&self.data, explicit.data) {
            config.data_dir = v.clone();
        }
        if let (Some(v), false) = (self.pg, explicit.pg) {
            config.pg_addr = v;
        }
        if let (Some(v), false) = (self.rpc, explicit.rpc) {
            config.rpc_addr = v;
        }
        if let (Some(v), false) = (self.http, explicit.http) {
            config.http_addr = v;
        }
        if config.join.is_none() {
            config.join = self.join;
        }
        if let (Some(v), false) = (&self.user, explicit.user) {
            config.user = v.clone();
        }
        if config.password.is_none() {
            config.password = self.password.clone();
        }
        if config.tls_cert.is_none() {
            config.tls_cert = self.tls_cert.clone();
        }
        if config.tls_key.is_none() {
            config.tls_key = self.tls_key.clone();
        }
        if config.tls_client_ca.is_none() {
            config.tls_client_ca = self.tls_client_ca.clone();
        }
        // A bool flag cannot say "not given"; the file can only turn it on.
        config.tls_required |= self.tls_required.unwrap_or(false);
        if let (Some(v), false) = (self.auth, explicit.auth) {
            config.auth = v;
        }
        if let (Some(v), false) = (self.snapshot_every, explicit.snapshot_every) {
            config.snapshot_every = v;
        }
        if config.worker_threads.is_none() {
            config.worker_threads = self.worker_threads;
        }
        if config.rpc_tls.is_none() {
            if let (Some(cert), Some(key), Some(ca)) = (&self.rpc_tls_cert, &self.rpc_tls_key, &self.rpc_tls_ca) {
                config.rpc_tls =
                    Some(shoal_raft::NodeTlsFiles { cert: cert.clone(), key: key.clone(), ca: ca.clone() });
            }
        }
    }
}

/// Which settings were given explicitly on the command line.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExplicitFlags {
    pub data: bool,
    pub pg: bool,
    pub rpc: bool,
    pub http: bool,
    pub user: bool,
    pub auth: bool,
    pub snapshot_every: bool,
}

/// `auth = "cert"`: the method's name, refused with the list of names.
fn auth_method<'de, D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Option<AuthMethod>, D::Error> {
    let name = String::deserialize(deserializer)?;
    name.parse().map(Some).map_err(|e: Error| serde::de::Error::custom(e.message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_fills_what_flags_did_not_set() {
        let file = ConfigFile::parse("data = \"/srv/shoal\"\npg = \"127.0.0.1:7000\"\nuser = \"app\"\n").unwrap();
        let mut config = ServerConfig::default();
        file.apply_to(&mut config, &ExplicitFlags { pg: true, ..Default::default() });
        assert_eq!(config.data_dir, PathBuf::from("/srv/shoal"));
        assert_eq!(config.pg_addr.port(), 5433, "explicit flag wins");
        assert_eq!(config.user, "app");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        assert!(ConfigFile::parse("bogus = 1").unwrap_err().message.contains("bogus"));
        assert!(ConfigFile::parse("pg = \"not an address\"").is_err());
        let half = ConfigFile::parse("rpc-tls-cert = \"node.pem\"").unwrap_err();
        assert!(half.message.contains("all three"), "{}", half.message);
        let whole =
            ConfigFile::parse("rpc-tls-cert = \"n.pem\"\nrpc-tls-key = \"n.key\"\nrpc-tls-ca = \"ca.pem\"").unwrap();
        let mut config = ServerConfig::default();
        whole.apply_to(&mut config, &ExplicitFlags::default());
        assert_eq!(config.rpc_tls.map(|t| t.ca), Some(PathBuf::from("ca.pem")));
        let zero = ConfigFile::parse("worker-threads = 0").unwrap_err();
        assert!(zero.message.contains("at least 1"), "{}", zero.message);
    }

    #[test]
    fn worker_threads_come_from_the_file_unless_given_as_a_flag() {
        let file = ConfigFile::parse("worker-threads = 3").unwrap();
        let mut config = ServerConfig::default();
        file.apply_to(&mut config, &ExplicitFlags::default());
        assert_eq!(config.worker_threads, Some(3));
        let mut config = ServerConfig { worker_threads: Some(1), ..ServerConfig::default() };
        file.apply_to(&mut config, &ExplicitFlags::default());
        assert_eq!(config.worker_threads, Some(1));
    }

    #[test]
    fn tls_required_and_auth_come_from_the_file() {
        let file = ConfigFile::parse("tls-required = true\nauth = \"cert-or-password\"").unwrap();
        let mut config = ServerConfig::default();
        file.apply_to(&mut config, &ExplicitFlags::default());
        assert!(config.tls_required);
        assert_eq!(config.auth, AuthMethod::CertOrPassword);
        eprintln!("--auth on the command line wins over the file");
        let mut config = ServerConfig { auth: AuthMethod::Cert, ..ServerConfig::default() };
        file.apply_to(&mut config, &ExplicitFlags { auth: true, ..Default::default() });
        assert_eq!(config.auth, AuthMethod::Cert);
        eprintln!("a bad method is refused with the list of good ones");
        let err = ConfigFile::parse("auth = \"trust\"").unwrap_err();
        assert!(err.message.contains("\"trust\"") && err.message.contains("cert-or-password"), "{}", err.message);
        assert!(ConfigFile::parse("tls-required = \"yes\"").is_err());
    }

    #[test]
    fn client_ca_comes_from_the_file_unless_given_as_a_flag() {
        let file =
            ConfigFile::parse("tls-cert = \"s.pem\"\ntls-key = \"s.key\"\ntls-client-ca = \"clients.pem\"").unwrap();
        let mut config = ServerConfig::default();
        file.apply_to(&mut config, &ExplicitFlags::default());
        assert_eq!(config.tls_client_ca, Some(PathBuf::from("clients.pem")));
        let mut config = ServerConfig { tls_client_ca: Some("flag.pem".into()), ..ServerConfig::default() };
        file.apply_to(&mut config, &ExplicitFlags::default());
        assert_eq!(config.tls_client_ca, Some(PathBuf::from("flag.pem")));
    }
}
