//! `shoal sql`: an interactive SQL shell with history, for machines without psql.
//!
//! As psql does, the interactive shell says at start-up whether the session
//! is encrypted — `SSL connection (protocol: TLSv1.3, cipher: …)`, printed
//! only when it is — and `\conninfo` says where it is connected and, again,
//! how; `-c` prints only the command's result.

use std::path::PathBuf;

use shoal_pgtls::{Encryption, Session, Spelling, SslMode, Tls, TlsSettings};
use tokio_postgres::SimpleQueryMessage;

/// Where and as whom to connect, and how securely (shared by `shoal sql`
/// and `shoal cluster`). The TLS flags are libpq's options, read by
/// `shoal-pgtls` as the ORM reads them from a URL: each one not given comes
/// from its `PGSSL*` variable, and the default `--sslmode prefer` uses TLS
/// when the server offers it, as psql does.
#[derive(clap::Args, Debug)]
pub struct ConnArgs {
    /// Server host.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Server port.
    #[arg(long, short = 'p', default_value_t = 5433)]
    port: u16,
    /// User name.
    #[arg(long, short = 'U', default_value = "shoal")]
    user: String,
    /// Database name.
    #[arg(long, short = 'd', default_value = "shoal")]
    dbname: String,
    /// Password (or SHOAL_PASSWORD).
    #[arg(long, env = "SHOAL_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// TLS, as libpq's sslmode: disable, prefer (TLS when the server offers
    /// it), require, verify-ca (the certificate chains to --sslrootcert) or
    /// verify-full (…and names --host). [default: PGSSLMODE, else prefer]
    #[arg(long, value_name = "MODE")]
    sslmode: Option<SslMode>,
    /// PEM file of CA certificates to check the server's certificate
    /// against. [default: PGSSLROOTCERT, else ~/.postgresql/root.crt for verify-*]
    #[arg(long, value_name = "FILE")]
    sslrootcert: Option<PathBuf>,
    /// PEM file with a client certificate, for servers that ask for one
    /// (--tls-client-ca); its CN must be the user. [default: PGSSLCERT,
    /// else ~/.postgresql/postgresql.crt if it exists]
    #[arg(long, value_name = "FILE")]
    sslcert: Option<PathBuf>,
    /// PEM file with the client certificate's private key (mode 0600).
    /// [default: PGSSLKEY, else ~/.postgresql/postgresql.key if it exists]
    #[arg(long, value_name = "FILE")]
    sslkey: Option<PathBuf>,
}

impl ConnArgs {
    /// Connects, driving the connection on a background task. A refusal
    /// carries the server's SQLSTATE and message, and which flag to change.
    pub async fn connect(&self) -> anyhow::Result<tokio_postgres::Client> {
        Ok(self.connect_session().await?.0)
    }

    /// [`ConnArgs::connect`], also telling what the session's TLS
    /// negotiated (`None`: it is plain).
    async fn connect_session(&self) -> anyhow::Result<(tokio_postgres::Client, Option<Encryption>)> {
        let mut config = tokio_postgres::Config::new();
        config.host(&self.host).port(self.port).user(&self.user).dbname(&self.dbname);
        if let Some(password) = &self.password {
            config.password(password);
        }
        let given = TlsSettings {
            sslmode: self.sslmode,
            sslrootcert: self.sslrootcert.clone(),
            sslcert: self.sslcert.clone(),
            sslkey: self.sslkey.clone(),
        };
        let options = given.resolve(Spelling::Flags, &shoal_pgtls::process_env)?;
        let tls = Tls::new(options, &mut config)?;
        let Session { client, connection, encryption } = tls.connect(&config).await.map_err(|e| {
            let mut message = format!("cannot connect to {}: {e}", self.address());
            if let Some(hint) = e.as_db_error().and_then(|db| flag_hint(&tls, db, e.tls_failure().is_some())) {
                message = format!("{message}\nhint: {hint}");
            }
            anyhow::anyhow!(message)
        })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                eprintln!("connection error: {e}");
            }
        });
        Ok((client, encryption))
    }

    /// `host:port`, for messages.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// What psql's `\conninfo` says: where the session is connected and,
    /// when it is encrypted, how.
    fn conninfo(&self, encryption: Option<&Encryption>) -> String {
        let mut info = format!(
            "You are connected to database \"{}\" as user \"{}\" on host \"{}\" at port \"{}\".",
            self.dbname, self.user, self.host, self.port
        );
        if let Some(encryption) = encryption {
            info = format!("{info}\n{}", ssl_line(encryption));
        }
        info
    }
}

/// psql's line for an encrypted session (psql adds OpenSSL's compression
/// flag, always off; rustls has none).
fn ssl_line(encryption: &Encryption) -> String {
    format!("SSL connection ({encryption})")
}

/// Which flag to change after the server refused the login (`28000`):
/// TLS for a server that requires it, a client certificate for one that
/// logs in by certificate, a working handshake for one that requires TLS
/// when `prefer`'s handshake failed (`tls_failed`) and its second attempt,
/// without TLS, was refused. The server's own hint speaks libpq's option
/// names; this one speaks this command line's.
fn flag_hint(tls: &Tls, db: &tokio_postgres::error::DbError, tls_failed: bool) -> Option<String> {
    if db.code() != &tokio_postgres::error::SqlState::INVALID_AUTHORIZATION_SPECIFICATION {
        return None;
    }
    // Shoal says "requires TLS" or "needs TLS", PostgreSQL's pg_hba.conf
    // refusal "no encryption"; Shoal's certificate refusals say "client
    // certificate".
    let message = db.message();
    let wants_certificate = message.contains("client certificate");
    let certificate = "--sslcert <PEM file> --sslkey <PEM file>";
    let wants_tls = message.contains("TLS") || message.contains("encryption");
    if tls_failed && wants_tls {
        return Some(
            "the server accepts only TLS connections, and the TLS handshake failed: fix what its error says \
             (with --sslrootcert, the CA file must hold the CA that signed the server's certificate)"
                .to_string(),
        );
    }
    if tls.mode() == SslMode::Disable && wants_tls {
        let with = if wants_certificate { format!(" and a client certificate ({certificate})") } else { String::new() };
        return Some(format!(
            "the server accepts only TLS connections, and {} turns TLS off: use --sslmode require{with} \
             (or prefer, the default; verify-full with --sslrootcert also checks the server's certificate)",
            tls.mode_setting()
        ));
    }
    if wants_certificate && tls.client_cert().is_none() {
        return Some(format!(
            "give a client certificate signed by the server's client CA whose CN is the user: {certificate} \
             (or PGSSLCERT and PGSSLKEY)"
        ));
    }
    None
}

#[derive(clap::Args, Debug)]
pub struct ShellArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// Run this SQL and exit.
    #[arg(long, short = 'c')]
    command: Option<String>,
}

/// Renders simple-query results as an aligned table, like psql.
pub fn render(messages: &[SimpleQueryMessage]) -> String {
    let mut out = String::new();
    let mut header: Option<Vec<String>> = None;
    let mut rows: Vec<Vec<String>> = Vec::new();
    for message in messages {
        match message {
            SimpleQueryMessage::RowDescription(columns) => {
                header = Some(columns.iter().map(|c| c.name().to_string()).collect());
            }
            SimpleQueryMessage::Row(row) => {
                if header.is_none() {
                    header = Some(row.columns().iter().map(|c| c.name().to_string()).collect());
                }
                rows.push((0..row.len()).map(|i| row.get(i).unwrap_or("").to_string()).collect());
            }
            SimpleQueryMessage::CommandComplete(n) => {
                if let Some(h) = header.take() {
                    out.push_str(&table(&h, &rows));
                    out.push_str(&format!("({} row{})\n", rows.len(), if rows.len() == 1 { "" } else { "s" }));
                    rows.clear();
                } else {
                    out.push_str(&format!("OK {n}\n"));
                }
            }
            _ => {}
        }
    }
    out
}

fn table(header: &[String], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: &[String]| -> String {
        let padded: Vec<String> =
            cells.iter().enumerate().map(|(i, c)| format!(" {:<w$} ", c, w = widths[i])).collect();
        padded.join("|").trim_end().to_string() + "\n"
    };
    let mut out = line(header);
    out.push_str(&widths.iter().map(|w| "-".repeat(w + 2)).collect::<Vec<_>>().join("+"));
    out.push('\n');
    for row in rows {
        out.push_str(&line(row));
    }
    out
}

/// Runs the shell.
pub async fn run(args: ShellArgs) -> anyhow::Result<()> {
    let (client, encryption) = args.conn.connect_session().await?;
    if let Some(sql) = args.command {
        match client.simple_query(&sql).await {
            Ok(messages) => print!("{}", render(&messages)),
            Err(e) => {
                eprintln!("{}", describe(&e));
                std::process::exit(1);
            }
        }
        return Ok(());
    }
    let history = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".shoal_history"));
    let mut editor = rustyline::DefaultEditor::new()?;
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    println!(
        "shoal sql — connected to {}. End statements with ';'. \\conninfo describes the connection, \\q quits.",
        args.conn.address()
    );
    // As psql: a line for an encrypted session, none for a plain one.
    if let Some(encryption) = &encryption {
        println!("{}", ssl_line(encryption));
    }
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() { "shoal=> " } else { "shoal-> " };
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(rustyline::error::ReadlineError::Interrupted) => {
                buffer.clear();
                continue;
            }
            Err(_) => break,
        };
        let trimmed = line.trim();
        if buffer.is_empty() && (trimmed == "\\q" || trimmed == "quit" || trimmed == "exit") {
            break;
        }
        if buffer.is_empty() && trimmed == "\\conninfo" {
            let _ = editor.add_history_entry(trimmed);
            println!("{}", args.conn.conninfo(encryption.as_ref()));
            continue;
        }
        buffer.push_str(&line);
        buffer.push('\n');
        if !trimmed.ends_with(';') {
            continue;
        }
        let _ = editor.add_history_entry(buffer.trim());
        match client.simple_query(&buffer).await {
            Ok(messages) => print!("{}", render(&messages)),
            Err(e) => eprintln!("{}", describe(&e)),
        }
        buffer.clear();
    }
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    Ok(())
}

pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("ERROR:  {} ({})", db.message(), db.code().code()),
        None => format!("error: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conninfo_speaks_as_psql() {
        let conn = ConnArgs {
            host: "db1".into(),
            port: 5433,
            user: "app".into(),
            dbname: "shoal".into(),
            password: None,
            sslmode: None,
            sslrootcert: None,
            sslcert: None,
            sslkey: None,
        };
        let plain = r#"You are connected to database "shoal" as user "app" on host "db1" at port "5433"."#;
        assert_eq!(conn.conninfo(None), plain);
        let encryption = Encryption { protocol: "TLSv1.3".into(), cipher: "TLS13_AES_256_GCM_SHA384".into() };
        assert_eq!(
            conn.conninfo(Some(&encryption)),
            format!("{plain}\nSSL connection (protocol: TLSv1.3, cipher: TLS13_AES_256_GCM_SHA384)")
        );
    }
}
