//! One client connection: startup, authentication, then the query loop.
//!
//! The connection is a small state machine driven by frontend messages:
//!
//! ```text
//!  Negotiating ──SSLRequest──▶ ('S' + TLS | 'N') ──StartupMessage──▶ Policy::login ──▶ (SCRAM) ──▶ Ready
//!       └──CancelRequest (plain or inside TLS)──▶ cancel the target, close                           │
//!  Ready: Query → results → ReadyForQuery                                                            │
//!         Parse/Bind/Describe/Execute/Close → … ; an error → skip to Sync ; Sync → ReadyForQuery
//!  EOF, Terminate, a fatal error or shutdown → Session::close() exactly once, then the socket closes
//! ```
//!
//! Prepared statements and portals live here, keyed by name (`""` is the
//! unnamed one); the backend only ever sees `prepare` and `execute`.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use futures::FutureExt;
use pgwire::api::auth::mechanism::{AuthMechanism, AuthMechanismFactory, AuthState};
use pgwire::api::auth::sasl::scram::ScramAuth;
use pgwire::api::{DefaultClient, METADATA_DATABASE, METADATA_USER};
use pgwire::messages::data::{DataRow, FieldDescription, NoData, ParameterDescription, RowDescription};
use pgwire::messages::extendedquery::{
    Bind, BindComplete, Close, CloseComplete, Describe, Execute, Parse, ParseComplete, PortalSuspended,
    TARGET_TYPE_BYTE_PORTAL, TARGET_TYPE_BYTE_STATEMENT,
};
use pgwire::messages::response::{
    CommandComplete, EmptyQueryResponse, ErrorResponse, GssEncResponse, NoticeResponse, ReadyForQuery, SslResponse,
    TransactionStatus as WireStatus,
};
use pgwire::messages::startup::{
    Authentication, BackendKeyData, NegotiateProtocolVersion, ParameterStatus, PasswordMessageFamily, SecretKey,
    Startup,
};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage, SslNegotiationMetaMessage};
use pgwire::tokio::TlsAcceptor;
use shoal_common::{DataType, Error, SqlState, Value};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::auth::{self, Login, Policy};
use crate::backend::{Backend, Column, ConnectParams, Notice, Prepared, Session, StatementResult, TransactionStatus};
use crate::cancel::{CancelGuard, CancelRegistry};
use crate::codec::{self, Format};
use crate::framing::{Framer, ReadError, Stream};
use crate::tls::ClientCert;
use crate::WireConfig;

/// A client that has not finished startup within this time is dropped, so
/// half-open connections cannot pile up.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on SSL/GSS negotiation round trips before the StartupMessage.
const MAX_NEGOTIATION_MESSAGES: usize = 4;

/// What every connection of one listener shares.
pub(crate) struct Shared<B> {
    backend: Arc<B>,
    config: Arc<WireConfig>,
    tls: Option<TlsAcceptor>,
    /// Who may log in, and how (`auth.rs`).
    policy: Policy,
    scram: Option<ScramAuth>,
    cancels: Arc<CancelRegistry>,
}

impl<B: Backend> Shared<B> {
    pub(crate) fn new(backend: Arc<B>, config: Arc<WireConfig>) -> std::io::Result<Shared<B>> {
        config.check().map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.message))?;
        let tls = config.tls.as_ref().map(crate::tls::acceptor).transpose()?;
        let policy = Policy {
            method: config.auth,
            user: config.user.clone(),
            tls_required: config.tls_required,
            client_certs: config.tls.as_ref().is_some_and(|t| t.client_ca.is_some()),
            password: config.password.is_some(),
        };
        let scram = config.password.as_deref().map(|p| auth::scram_auth(&config.user, p));
        Ok(Shared { backend, config, tls, policy, scram, cancels: Arc::new(CancelRegistry::new()) })
    }
}

/// Serves one accepted socket to completion. Never panics on client input;
/// errors end only this connection.
pub(crate) async fn run<B: Backend>(
    socket: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared<B>>,
    stop: watch::Receiver<bool>,
) {
    let _ = socket.set_nodelay(true);
    let mut framer = Framer::new(socket, shared.config.max_message_bytes);
    let startup = tokio::time::timeout(STARTUP_TIMEOUT, startup(&mut framer, peer, &shared)).await;
    let Ok(Some((session, params))) = startup else {
        framer.shutdown().await;
        return;
    };
    let mut conn = Connection {
        framer,
        session,
        statements: HashMap::new(),
        portals: HashMap::new(),
        skip_until_sync: false,
        reported_params: HashMap::new(),
        reported_generation: None,
        server_version: shared.config.server_version.clone(),
        max_message_bytes: shared.config.max_message_bytes,
    };
    let guard = conn.finish_startup(&shared, &params).await;
    if let Some(_guard) = guard {
        conn.serve(stop).await;
    }
    // Every path out of the loop ends here: the session is closed exactly once.
    conn.session.close().await;
    conn.framer.shutdown().await;
}

/// An error that ends the connection: sent as FATAL, then the socket closes.
fn fatal(framer: &mut Framer, err: &Error) {
    framer.queue(PgWireBackendMessage::ErrorResponse(error_response(err, "FATAL")));
}

fn protocol_violation(msg: impl Into<String>) -> Error {
    Error::new(SqlState::PROTOCOL_VIOLATION, msg)
}

/// Reports a framing failure to the client where that still makes sense.
async fn report_read_error(framer: &mut Framer, err: ReadError, max: usize) {
    match err {
        ReadError::Io(err) => tracing::debug!(%err, "client connection ended"),
        ReadError::TooLarge { len } => {
            let err = Error::new(SqlState::PROGRAM_LIMIT_EXCEEDED, format!("message too large: {len} bytes"))
                .with_detail(format!("The server accepts messages of at most {max} bytes."));
            framer.queue(PgWireBackendMessage::ErrorResponse(error_response(&err, "ERROR")));
            let _ = framer.flush().await;
        }
        ReadError::Protocol(msg) => {
            fatal(framer, &protocol_violation(format!("invalid frontend message: {msg}")));
            let _ = framer.flush().await;
        }
    }
}

/// SSL negotiation, cancel requests, StartupMessage and authentication.
/// Returns the session and its parameters, or `None` when the connection
/// must simply close (cancel request served, client gone, auth failed).
async fn startup<B: Backend>(
    framer: &mut Framer,
    peer: SocketAddr,
    shared: &Shared<B>,
) -> Option<(B::Session, ConnectParams)> {
    let max = shared.config.max_message_bytes;
    // `Some` once TLS is up: what the client's certificate proved.
    let mut client_cert = None;
    let mut startup_msg = None;
    for _ in 0..MAX_NEGOTIATION_MESSAGES {
        let msg = match framer.read().await {
            Ok(Some(msg)) => msg,
            Ok(None) => return None,
            Err(err) => {
                report_read_error(framer, err, max).await;
                return None;
            }
        };
        match msg {
            PgWireFrontendMessage::SslNegotiation(SslNegotiationMetaMessage::PostgresSsl(_)) => {
                match (&shared.tls, client_cert.is_some()) {
                    (Some(acceptor), false) => {
                        if framer.has_buffered_input() {
                            // Bytes sent before the handshake would bypass TLS (CVE-2021-23214).
                            return None;
                        }
                        framer.queue(PgWireBackendMessage::SslResponse(SslResponse::Accept));
                        framer.flush().await.ok()?;
                        let Stream::Plain(tcp) = std::mem::replace(&mut framer.stream, Stream::Detached) else {
                            return None;
                        };
                        let tls = match acceptor.accept(tcp).await {
                            Ok(tls) => tls,
                            Err(err) => {
                                // A refused client certificate ends here; the
                                // client got the TLS alert, the operator gets why.
                                tracing::info!(%peer, %err, "TLS handshake failed");
                                return None;
                            }
                        };
                        client_cert = Some(ClientCert::of(tls.get_ref().1));
                        framer.stream = Stream::Tls(Box::new(tls));
                        framer.expect_startup_only();
                    }
                    _ => {
                        framer.queue(PgWireBackendMessage::SslResponse(SslResponse::Refuse));
                        framer.flush().await.ok()?;
                    }
                }
            }
            PgWireFrontendMessage::SslNegotiation(SslNegotiationMetaMessage::PostgresGss(_)) => {
                framer.queue(PgWireBackendMessage::GssEncResponse(GssEncResponse::Refuse));
                framer.flush().await.ok()?;
            }
            // The framer resolves "no negotiation" itself; nothing to answer.
            PgWireFrontendMessage::SslNegotiation(SslNegotiationMetaMessage::None) => {}
            PgWireFrontendMessage::CancelRequest(cancel) => {
                shared.cancels.cancel(cancel.pid, &cancel.secret_key);
                return None;
            }
            PgWireFrontendMessage::Startup(s) => {
                startup_msg = Some(s);
                break;
            }
            _ => {
                fatal(framer, &protocol_violation("expected a startup message"));
                let _ = framer.flush().await;
                return None;
            }
        }
    }
    let Some(startup_msg) = startup_msg else {
        fatal(framer, &protocol_violation("expected a startup message"));
        let _ = framer.flush().await;
        return None;
    };
    framer.expect_typed_messages();

    let params = match check_startup(framer, &startup_msg, peer) {
        Ok(params) => params,
        Err(err) => {
            fatal(framer, &err);
            let _ = framer.flush().await;
            return None;
        }
    };
    // TLS and the certificate are judged before any password is asked for,
    // as PostgreSQL does. A cancel request never gets here: it is served
    // above, before the StartupMessage, plain or not.
    let login = match shared.policy.login(client_cert.as_ref(), &params.user, peer.ip()) {
        Ok(login) => login,
        Err(err) => {
            tracing::info!(%peer, user = %params.user, reason = %err.message, "connection refused");
            fatal(framer, &err);
            let _ = framer.flush().await;
            return None;
        }
    };
    if login == Login::Scram {
        if let Err(err) = scram(framer, shared, &params, client_cert.is_some()).await {
            fatal(framer, &err);
            let _ = framer.flush().await;
            return None;
        }
    }
    match shared.backend.connect(params.clone()).await {
        Ok(session) => Some((session, params)),
        Err(err) => {
            fatal(framer, &err);
            let _ = framer.flush().await;
            None
        }
    }
}

/// Validates the StartupMessage: protocol 3.x and a user name.
fn check_startup(framer: &mut Framer, s: &Startup, peer: SocketAddr) -> Result<ConnectParams, Error> {
    if s.protocol_number_major != 3 {
        return Err(Error::new(
            SqlState::FEATURE_NOT_SUPPORTED,
            format!(
                "unsupported frontend protocol {}.{}: server supports 3.0 to 3.0",
                s.protocol_number_major, s.protocol_number_minor
            ),
        ));
    }
    if s.protocol_number_minor > 0 {
        // Newer minor versions are negotiated down to 3.0, as PostgreSQL 16 does.
        let unsupported = s.parameters.keys().filter(|k| k.starts_with("_pq_.")).cloned().collect();
        framer.queue(PgWireBackendMessage::NegotiateProtocolVersion(NegotiateProtocolVersion::new(0, unsupported)));
    }
    let user = s.parameters.get("user").cloned().unwrap_or_default();
    if user.is_empty() {
        return Err(Error::new(
            SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
            "no PostgreSQL user name specified in startup packet",
        ));
    }
    let database = s.parameters.get("database").filter(|d| !d.is_empty()).cloned().unwrap_or_else(|| user.clone());
    let options = match s.parameters.get("options") {
        Some(text) => crate::backend::parse_startup_options(text)
            .map_err(|e| Error::new(SqlState::PROTOCOL_VIOLATION, format!("invalid startup options: {e}")))?,
        None => Vec::new(),
    };
    Ok(ConnectParams {
        user,
        database,
        application_name: s.parameters.get("application_name").cloned(),
        options,
        client_addr: peer,
    })
}

/// Runs the SCRAM-SHA-256 exchange for the configured password.
async fn scram<B: Backend>(
    framer: &mut Framer,
    shared: &Shared<B>,
    params: &ConnectParams,
    secure: bool,
) -> Result<(), Error> {
    // `Policy::login` asks for SCRAM only when a password is configured.
    let Some(scram) = &shared.scram else {
        return Err(Error::internal("SCRAM authentication without a configured password"));
    };
    let failed = || auth::password_failed(&params.user);
    let mut client = DefaultClient::<()>::new(params.client_addr, secure);
    client.metadata.insert(METADATA_USER.to_string(), params.user.clone());
    client.metadata.insert(METADATA_DATABASE.to_string(), params.database.clone());
    let mut mechanism: Box<dyn AuthMechanism> = scram.create();
    let mut state = mechanism.begin(&client).await.map_err(|_| failed())?;
    let mut first = true;
    // SCRAM is two client messages; the bound only guards against a loop.
    for _ in 0..4 {
        match state {
            AuthState::InProgress(request) => {
                framer.queue(PgWireBackendMessage::Authentication(request));
                framer.flush().await.map_err(|_| failed())?;
            }
            AuthState::Ok { final_message, .. } => {
                if let Some(msg) = final_message {
                    framer.queue(PgWireBackendMessage::Authentication(msg));
                }
                return Ok(());
            }
            AuthState::Failed(_) => return Err(failed()),
        }
        let msg = match framer.read().await {
            Ok(Some(PgWireFrontendMessage::PasswordMessageFamily(msg))) => msg,
            Ok(Some(_)) => return Err(protocol_violation("expected SASL response")),
            Ok(None) | Err(_) => return Err(failed()),
        };
        // Decode the raw message here, where a malformed one cannot panic
        // inside pgwire's state machine.
        let msg = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if first {
                msg.into_sasl_initial_response().map(PasswordMessageFamily::SASLInitialResponse)
            } else {
                msg.into_sasl_response().map(PasswordMessageFamily::SASLResponse)
            }
        }))
        .map_err(|_| protocol_violation("malformed SASL message"))?
        .map_err(|_| protocol_violation("malformed SASL message"))?;
        first = false;
        let step = std::panic::AssertUnwindSafe(mechanism.next(&client, msg)).catch_unwind().await;
        state = match step {
            Ok(Ok(state)) => state,
            Ok(Err(_)) | Err(_) => return Err(failed()),
        };
    }
    Err(failed())
}

/// The ParameterStatus values every PostgreSQL 16 server reports; the
/// session's own values override these, and `server_version` always comes
/// from the configuration.
fn default_parameters(params: &ConnectParams) -> Vec<(String, String)> {
    [
        ("server_encoding", "UTF8"),
        ("client_encoding", "UTF8"),
        ("DateStyle", "ISO, MDY"),
        ("IntervalStyle", "postgres"),
        ("TimeZone", "UTC"),
        ("integer_datetimes", "on"),
        ("standard_conforming_strings", "on"),
        ("is_superuser", "on"),
        ("in_hot_standby", "off"),
        ("default_transaction_read_only", "off"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .chain([
        ("application_name".to_string(), params.application_name.clone().unwrap_or_default()),
        ("session_authorization".to_string(), params.user.clone()),
    ])
    .collect()
}

/// A statement from Parse. `prepared` is `None` for an empty query string,
/// which PostgreSQL accepts and answers with EmptyQueryResponse.
struct Statement {
    prepared: Option<Prepared>,
}

enum PortalState {
    NotStarted,
    /// Rows produced by `execute`, sent `max_rows` at a time; `fetched`
    /// counts the rows already sent by earlier Execute messages.
    Rows {
        columns: Arc<Vec<Column>>,
        rows: VecDeque<Vec<Value>>,
        tag: String,
        fetched: usize,
    },
    Done,
}

struct Portal {
    statement: Arc<Statement>,
    params: Vec<Value>,
    /// The Bind message's result format codes (validated).
    result_formats: Vec<i16>,
    state: PortalState,
}

/// The format of result column `i` under a Bind's format-code list.
fn result_format(codes: &[i16], i: usize) -> Format {
    match codes {
        [] => Format::Text,
        [one] => Format::from_code(*one).unwrap_or(Format::Text),
        many => many.get(i).and_then(|c| Format::from_code(*c).ok()).unwrap_or(Format::Text),
    }
}

struct Connection<S> {
    framer: Framer,
    session: S,
    statements: HashMap<String, Arc<Statement>>,
    portals: HashMap<String, Portal>,
    /// After an error in the extended protocol, messages are discarded until Sync.
    skip_until_sync: bool,
    /// ParameterStatus values the client has been told, to report changes.
    reported_params: HashMap<String, String>,
    /// The session's parameter generation when they were last reported.
    reported_generation: Option<u64>,
    server_version: String,
    max_message_bytes: usize,
}

impl<S: Session> Connection<S> {
    /// AuthenticationOk, ParameterStatus, BackendKeyData, ReadyForQuery.
    /// Returns the cancel registration, or `None` if the client is gone.
    async fn finish_startup<B: Backend>(
        &mut self,
        shared: &Arc<Shared<B>>,
        params: &ConnectParams,
    ) -> Option<CancelGuard> {
        self.framer.queue(PgWireBackendMessage::Authentication(Authentication::Ok));
        for (k, v) in default_parameters(params) {
            self.reported_params.insert(k, v);
        }
        self.report_parameter_changes(true);
        let (pid, secret, guard) = shared.cancels.register(self.session.canceller());
        self.framer.queue(PgWireBackendMessage::BackendKeyData(BackendKeyData::new(pid, SecretKey::I32(secret))));
        self.ready_for_query();
        self.framer.flush().await.ok()?;
        Some(guard)
    }

    /// Queues ParameterStatus for every value that changed (or all of them at startup).
    fn report_parameter_changes(&mut self, all: bool) {
        let generation = self.session.parameter_generation();
        if !all && self.reported_generation == Some(generation) {
            return;
        }
        let since = if all { None } else { self.reported_generation };
        self.reported_generation = Some(generation);
        let mut current = self.session.parameter_status(since);
        if since.is_none() {
            current.push(("server_version".to_string(), self.server_version.clone()));
        }
        let mut changed: Vec<(String, String)> = Vec::new();
        for (k, v) in current {
            if k == "server_version" && v != self.server_version {
                continue; // the configured version always wins
            }
            if self.reported_params.get(&k) != Some(&v) {
                self.reported_params.insert(k.clone(), v.clone());
                changed.push((k, v));
            }
        }
        if all {
            let mut everything: Vec<_> = self.reported_params.clone().into_iter().collect();
            everything.sort();
            changed = everything;
        }
        for (k, v) in changed {
            self.framer.queue(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(k, v)));
        }
    }

    fn ready_for_query(&mut self) {
        let status = match self.session.transaction_status() {
            TransactionStatus::Idle => WireStatus::Idle,
            TransactionStatus::InTransaction => WireStatus::Transaction,
            TransactionStatus::Failed => WireStatus::Error,
        };
        self.framer.queue(PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(status)));
    }

    fn send_error(&mut self, err: &Error) {
        self.framer.queue(PgWireBackendMessage::ErrorResponse(error_response(err, "ERROR")));
    }

    fn send_notices(&mut self) {
        for notice in self.session.take_notices() {
            self.framer.queue(PgWireBackendMessage::NoticeResponse(notice_response(&notice)));
        }
    }

    /// The query loop. Returns when the client leaves, on a fatal error, or
    /// on shutdown while idle.
    async fn serve(&mut self, mut stop: watch::Receiver<bool>) {
        loop {
            // PostgreSQL's idle_in_transaction_session_timeout: only while a
            // transaction block is open and the client sends nothing.
            let idle_limit = match self.session.transaction_status() {
                TransactionStatus::Idle => None,
                _ => self.session.idle_in_transaction_timeout(),
            };
            let read = tokio::select! {
                read = self.framer.read() => read,
                _ = idle_expired(idle_limit) => {
                    let err = Error::new(
                        SqlState::parse("25P03"),
                        "terminating connection due to idle-in-transaction timeout",
                    );
                    fatal(&mut self.framer, &err);
                    let _ = self.framer.flush().await;
                    return;
                }
                _ = stopped(&mut stop) => {
                    let err = Error::new(SqlState::ADMIN_SHUTDOWN, "terminating connection due to administrator command");
                    fatal(&mut self.framer, &err);
                    let _ = self.framer.flush().await;
                    return;
                }
            };
            let msg = match read {
                Ok(Some(msg)) => msg,
                Ok(None) => return,
                Err(err) => {
                    report_read_error(&mut self.framer, err, self.max_message_bytes).await;
                    return;
                }
            };
            match self.handle(msg).await {
                Ok(true) => {}
                Ok(false) | Err(_) => return, // finished, or the socket failed
            }
        }
    }

    /// Dispatches one message; `Ok(false)` ends the connection.
    async fn handle(&mut self, msg: PgWireFrontendMessage) -> std::io::Result<bool> {
        if self.skip_until_sync && !matches!(msg, PgWireFrontendMessage::Sync(_) | PgWireFrontendMessage::Terminate(_))
        {
            return Ok(true);
        }
        match msg {
            PgWireFrontendMessage::Query(q) => self.simple_query(q.query).await?,
            PgWireFrontendMessage::Parse(m) => {
                let r = self.parse(m).await;
                self.extended_result(r);
            }
            PgWireFrontendMessage::Bind(m) => {
                let r = self.bind(m);
                self.extended_result(r);
            }
            PgWireFrontendMessage::Describe(m) => {
                let r = self.describe(m);
                self.extended_result(r);
            }
            PgWireFrontendMessage::Execute(m) => {
                let r = self.execute(m).await;
                self.extended_result(r);
            }
            PgWireFrontendMessage::Close(m) => {
                self.close(m);
            }
            PgWireFrontendMessage::Sync(_) => {
                self.skip_until_sync = false;
                if self.session.transaction_status() == TransactionStatus::Idle {
                    // Portals live until the end of their transaction.
                    self.portals.clear();
                }
                self.report_parameter_changes(false);
                self.ready_for_query();
                self.framer.flush().await?;
            }
            PgWireFrontendMessage::Flush(_) => self.framer.flush().await?,
            PgWireFrontendMessage::Terminate(_) => return Ok(false),
            // COPY is not supported; stray copy messages are ignored as PostgreSQL does outside COPY.
            PgWireFrontendMessage::CopyData(_)
            | PgWireFrontendMessage::CopyDone(_)
            | PgWireFrontendMessage::CopyFail(_) => {}
            other => {
                let name = match other {
                    PgWireFrontendMessage::PasswordMessageFamily(_) => "password message",
                    PgWireFrontendMessage::Startup(_) => "startup message",
                    _ => "message",
                };
                fatal(&mut self.framer, &protocol_violation(format!("unexpected {name} after startup")));
                self.framer.flush().await?;
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// An extended-protocol step failed: report it and discard until Sync.
    fn extended_result(&mut self, result: Result<(), Error>) {
        if let Err(err) = result {
            self.send_notices();
            self.send_error(&err);
            self.skip_until_sync = true;
        }
    }

    async fn simple_query(&mut self, sql: String) -> std::io::Result<()> {
        // A simple Query implicitly destroys the unnamed statement and portal.
        self.statements.remove("");
        self.portals.remove("");
        if sql.chars().all(|c| c == ';' || c.is_whitespace()) {
            self.framer.queue(PgWireBackendMessage::EmptyQueryResponse(EmptyQueryResponse::new()));
        } else {
            let results = self.session.simple_query(&sql).await;
            self.send_notices();
            for result in results {
                match result {
                    Ok(StatementResult::Rows { columns, rows, tag }) => {
                        self.framer.queue(row_description(&columns, &[]));
                        let mut failed = false;
                        for row in &rows {
                            match data_row(&columns, &[], row) {
                                Ok(msg) => self.framer.send(msg).await?,
                                Err(err) => {
                                    self.send_error(&err);
                                    failed = true;
                                    break;
                                }
                            }
                        }
                        if failed {
                            break;
                        }
                        self.framer.queue(command_complete(&tag));
                    }
                    Ok(StatementResult::Command { tag }) => self.framer.queue(command_complete(&tag)),
                    Ok(StatementResult::Empty) => {
                        self.framer.queue(PgWireBackendMessage::EmptyQueryResponse(EmptyQueryResponse::new()))
                    }
                    Err(err) => {
                        self.send_error(&err);
                        break;
                    }
                }
            }
        }
        self.report_parameter_changes(false);
        self.ready_for_query();
        self.framer.flush().await
    }

    async fn parse(&mut self, m: Parse) -> Result<(), Error> {
        let name = m.name.unwrap_or_default();
        if !name.is_empty() && self.statements.contains_key(&name) {
            return Err(Error::new(SqlState(*b"42P05"), format!("prepared statement \"{name}\" already exists")));
        }
        let declared: Vec<Option<DataType>> =
            m.type_oids.iter().map(|oid| if *oid == 0 { None } else { DataType::from_oid(*oid) }).collect();
        let prepared = if m.query.chars().all(|c| c == ';' || c.is_whitespace()) {
            None
        } else {
            let mut prepared = self.session.prepare(&m.query, &declared).await?;
            // The client may declare more parameters than the statement uses.
            for extra in declared.iter().skip(prepared.param_types.len()) {
                prepared.param_types.push(extra.clone().unwrap_or(DataType::Text));
            }
            Some(prepared)
        };
        self.statements.insert(name, Arc::new(Statement { prepared }));
        self.framer.queue(PgWireBackendMessage::ParseComplete(ParseComplete::new()));
        Ok(())
    }

    fn bind(&mut self, m: Bind) -> Result<(), Error> {
        let stmt_name = m.statement_name.unwrap_or_default();
        let portal_name = m.portal_name.unwrap_or_default();
        let statement = self.statements.get(&stmt_name).cloned().ok_or_else(|| {
            Error::new(
                SqlState::INVALID_SQL_STATEMENT_NAME,
                format!("prepared statement \"{stmt_name}\" does not exist"),
            )
        })?;
        if !portal_name.is_empty() && self.portals.contains_key(&portal_name) {
            return Err(Error::new(SqlState(*b"42P03"), format!("cursor \"{portal_name}\" already exists")));
        }
        let (param_types, column_count) = match &statement.prepared {
            Some(p) => (p.param_types.as_slice(), p.columns.len()),
            None => (&[][..], 0),
        };
        if m.parameters.len() != param_types.len() {
            return Err(protocol_violation(format!(
                "bind message supplies {} parameters, but prepared statement \"{stmt_name}\" requires {}",
                m.parameters.len(),
                param_types.len()
            )));
        }
        let formats = Format::expand(&m.parameter_format_codes, m.parameters.len(), "parameter")?;
        let params = m
            .parameters
            .iter()
            .zip(param_types)
            .zip(formats)
            .enumerate()
            .map(|(i, ((bytes, ty), format))| codec::decode_param(ty, format, bytes.as_deref(), i))
            .collect::<Result<Vec<Value>, Error>>()?;
        for code in &m.result_column_format_codes {
            Format::from_code(*code)?;
        }
        if m.result_column_format_codes.len() > 1 && m.result_column_format_codes.len() != column_count {
            return Err(protocol_violation(format!(
                "bind message has {} result formats but query has {column_count} columns",
                m.result_column_format_codes.len()
            )));
        }
        self.portals.insert(
            portal_name,
            Portal { statement, params, result_formats: m.result_column_format_codes, state: PortalState::NotStarted },
        );
        self.framer.queue(PgWireBackendMessage::BindComplete(BindComplete::new()));
        Ok(())
    }

    fn describe(&mut self, m: Describe) -> Result<(), Error> {
        let name = m.name.unwrap_or_default();
        match m.target_type {
            TARGET_TYPE_BYTE_STATEMENT => {
                let statement = self.statements.get(&name).ok_or_else(|| {
                    Error::new(
                        SqlState::INVALID_SQL_STATEMENT_NAME,
                        format!("prepared statement \"{name}\" does not exist"),
                    )
                })?;
                let (types, columns) = match &statement.prepared {
                    Some(p) => (p.param_types.iter().map(DataType::oid).collect(), p.columns.as_slice()),
                    None => (Vec::new(), &[][..]),
                };
                let msg = if columns.is_empty() {
                    PgWireBackendMessage::NoData(NoData::new())
                } else {
                    row_description(columns, &[])
                };
                self.framer.queue(PgWireBackendMessage::ParameterDescription(ParameterDescription::new(types)));
                self.framer.queue(msg);
            }
            TARGET_TYPE_BYTE_PORTAL => {
                let Some(portal) = self.portals.get(&name) else {
                    // A cursor opened with SQL DECLARE is a portal too.
                    let columns = self.session.cursor_columns(&name).ok_or_else(|| {
                        Error::new(SqlState::INVALID_CURSOR_NAME, format!("portal \"{name}\" does not exist"))
                    })?;
                    self.framer.queue(row_description(&columns, &[]));
                    return Ok(());
                };
                let msg = match &portal.statement.prepared {
                    Some(p) if !p.columns.is_empty() => row_description(&p.columns, &portal.result_formats),
                    _ => PgWireBackendMessage::NoData(NoData::new()),
                };
                self.framer.queue(msg);
            }
            other => return Err(protocol_violation(format!("invalid DESCRIBE message subtype {other}"))),
        }
        Ok(())
    }

    async fn execute(&mut self, m: Execute) -> Result<(), Error> {
        let name = m.name.unwrap_or_default();
        let mut portal = self
            .portals
            .remove(&name)
            .ok_or_else(|| Error::new(SqlState::INVALID_CURSOR_NAME, format!("portal \"{name}\" does not exist")))?;
        let result = self.execute_portal(&mut portal, m.max_rows).await;
        self.portals.insert(name, portal);
        result
    }

    async fn execute_portal(&mut self, portal: &mut Portal, max_rows: i32) -> Result<(), Error> {
        if let PortalState::NotStarted = portal.state {
            let Some(prepared) = &portal.statement.prepared else {
                portal.state = PortalState::Done;
                self.framer.queue(PgWireBackendMessage::EmptyQueryResponse(EmptyQueryResponse::new()));
                return Ok(());
            };
            let result = self.session.execute(prepared, portal.params.clone()).await;
            self.send_notices();
            match result? {
                StatementResult::Rows { columns, rows, tag } => {
                    // Encode with the types the client was told in RowDescription.
                    let columns = if prepared.columns.len() == columns.len() {
                        Arc::new(prepared.columns.clone())
                    } else {
                        columns
                    };
                    portal.state = PortalState::Rows { columns, rows: rows.into(), tag, fetched: 0 };
                }
                StatementResult::Command { tag } => {
                    portal.state = PortalState::Done;
                    self.framer.queue(command_complete(&tag));
                    return Ok(());
                }
                StatementResult::Empty => {
                    portal.state = PortalState::Done;
                    self.framer.queue(PgWireBackendMessage::EmptyQueryResponse(EmptyQueryResponse::new()));
                    return Ok(());
                }
            }
        }
        let PortalState::Rows { columns, rows, tag, fetched } = &mut portal.state else {
            // Executing a finished portal fetches nothing more.
            self.framer.queue(command_complete("SELECT 0"));
            return Ok(());
        };
        let batch = if max_rows <= 0 { rows.len() } else { (max_rows as usize).min(rows.len()) };
        for row in rows.drain(..batch) {
            let msg = data_row(columns, &portal.result_formats, &row)?;
            self.framer.send(msg).await.map_err(|e| Error::io("sending rows", e))?;
        }
        if !rows.is_empty() {
            *fetched += batch;
            self.framer.queue(PgWireBackendMessage::PortalSuspended(PortalSuspended::new()));
            return Ok(());
        }
        // Fetched in pieces, a SELECT's tag counts the rows of this Execute only.
        let final_tag = if *fetched == 0 {
            tag.clone()
        } else if tag.starts_with("SELECT") {
            format!("SELECT {batch}")
        } else {
            tag.clone()
        };
        portal.state = PortalState::Done;
        self.framer.queue(command_complete(&final_tag));
        Ok(())
    }

    fn close(&mut self, m: Close) {
        let name = m.name.unwrap_or_default();
        match m.target_type {
            TARGET_TYPE_BYTE_STATEMENT => {
                self.statements.remove(&name);
            }
            TARGET_TYPE_BYTE_PORTAL => {
                self.portals.remove(&name);
            }
            other => {
                self.extended_result(Err(protocol_violation(format!("invalid CLOSE message subtype {other}"))));
                return;
            }
        }
        // Closing something that does not exist is not an error.
        self.framer.queue(PgWireBackendMessage::CloseComplete(CloseComplete::new()));
    }
}

/// Resolves once `limit` has passed; never without a limit.
async fn idle_expired(limit: Option<Duration>) {
    match limit {
        Some(limit) => tokio::time::sleep(limit).await,
        None => std::future::pending().await,
    }
}

/// Resolves once shutdown has been signalled (never, if the signal is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Strips NUL bytes, which would cut a protocol C string short.
fn cstr(s: &str) -> String {
    if s.contains('\0') {
        s.replace('\0', "")
    } else {
        s.to_string()
    }
}

fn error_response(err: &Error, severity: &str) -> ErrorResponse {
    let mut fields = vec![
        (b'S', severity.to_string()),
        (b'V', severity.to_string()),
        (b'C', err.code.as_str().to_string()),
        (b'M', cstr(&err.message)),
    ];
    if let Some(detail) = &err.detail {
        fields.push((b'D', cstr(detail)));
    }
    if let Some(hint) = &err.hint {
        fields.push((b'H', cstr(hint)));
    }
    if let Some(object) = &err.object {
        let named = [(b's', &object.schema), (b't', &object.table), (b'c', &object.column), (b'n', &object.constraint)];
        for (tag, value) in named {
            if let Some(value) = value {
                fields.push((tag, cstr(value)));
            }
        }
    }
    ErrorResponse::new(fields)
}

fn notice_response(notice: &Notice) -> NoticeResponse {
    NoticeResponse::new(vec![
        (b'S', cstr(&notice.severity)),
        (b'V', cstr(&notice.severity)),
        (b'C', notice.code.as_str().to_string()),
        (b'M', cstr(&notice.message)),
    ])
}

fn command_complete(tag: &str) -> PgWireBackendMessage {
    PgWireBackendMessage::CommandComplete(CommandComplete::new(cstr(tag)))
}

fn row_description(columns: &[Column], formats: &[i16]) -> PgWireBackendMessage {
    let fields = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let format = match result_format(formats, i) {
                Format::Text => 0,
                Format::Binary => 1,
            };
            FieldDescription::new(
                cstr(&c.name),
                c.table_oid as i32,
                c.column_id,
                c.data_type.oid(),
                c.data_type.size(),
                c.data_type.typmod(),
                format,
            )
        })
        .collect();
    PgWireBackendMessage::RowDescription(RowDescription::new(fields))
}

fn data_row(columns: &[Column], formats: &[i16], row: &[Value]) -> Result<PgWireBackendMessage, Error> {
    let mut data = BytesMut::new();
    for (i, value) in row.iter().enumerate() {
        let ty = columns.get(i).map(|c| &c.data_type).unwrap_or(&DataType::Text);
        match codec::encode_value(ty, result_format(formats, i), value)? {
            None => data.put_i32(-1),
            Some(bytes) => {
                let len = i32::try_from(bytes.len())
                    .map_err(|_| Error::new(SqlState::PROGRAM_LIMIT_EXCEEDED, "value too large to send"))?;
                data.put_i32(len);
                data.put_slice(&bytes);
            }
        }
    }
    let count =
        i16::try_from(row.len()).map_err(|_| Error::new(SqlState::PROGRAM_LIMIT_EXCEEDED, "too many columns"))?;
    Ok(PgWireBackendMessage::DataRow(DataRow::new(data, count)))
}
