//! `shoal sql`: an interactive SQL shell with history, for machines without psql.

use std::path::PathBuf;

use tokio_postgres::SimpleQueryMessage;

/// Where and as whom to connect (shared by `shoal sql` and `shoal cluster`).
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
}

impl ConnArgs {
    /// Connects, driving the connection on a background task.
    pub async fn connect(&self) -> anyhow::Result<tokio_postgres::Client> {
        let mut config = tokio_postgres::Config::new();
        config.host(&self.host).port(self.port).user(&self.user).dbname(&self.dbname);
        if let Some(password) = &self.password {
            config.password(password);
        }
        let (client, connection) = config
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(|e| anyhow::anyhow!("cannot connect to {}:{}: {}", self.host, self.port, describe(&e)))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                eprintln!("connection error: {e}");
            }
        });
        Ok(client)
    }

    /// `host:port`, for messages.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
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
    let client = args.conn.connect().await?;
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
    println!("shoal sql — connected to {}. End statements with ';'. \\q quits.", args.conn.address());
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
