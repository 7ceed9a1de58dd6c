//! The bank workload: transfers between accounts in multi-statement
//! transactions, and whole-table balance reads, checked by
//! [`check_bank`](crate::check_bank): money is never created or destroyed.
//!
//! ```text
//!   kit_accounts(id bigint PRIMARY KEY, balance bigint NOT NULL)
//!   transfer  BEGIN
//!             UPDATE kit_accounts SET balance = balance - $2 WHERE id = $1 AND balance >= $2   (0 rows: refused)
//!             UPDATE kit_accounts SET balance = balance + $2 WHERE id = $1
//!             COMMIT
//!   read all  SELECT id, balance FROM kit_accounts ORDER BY id
//! ```

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use rand::Rng;
use tokio::time::Instant;
use tokio_postgres::Client;

use super::{run_clients, setup_sql, Endpoints, Failure, Session, SETUP_TIMEOUT};
use crate::history::{ClientId, Op, Output, Recorder};
use crate::seed::Seed;

/// Client id of the read made by [`BankWorkload::read_final`].
pub const FINAL_READER: ClientId = ClientId::MAX - 1;

/// Configuration of the bank workload.
#[derive(Clone, Debug)]
pub struct BankWorkload {
    pub accounts: u64,
    pub initial_balance: i64,
    pub clients: u64,
    /// Transfers move `1..=max_transfer`.
    pub max_transfer: i64,
    pub read_percent: u32,
    /// Client ids are `first_client..first_client + clients`.
    pub first_client: ClientId,
}

impl Default for BankWorkload {
    fn default() -> Self {
        BankWorkload {
            accounts: 5,
            initial_balance: 100,
            clients: 3,
            max_transfer: 30,
            read_percent: 30,
            first_client: 1000,
        }
    }
}

impl BankWorkload {
    /// The sum every balance read must show.
    pub fn total(&self) -> i64 {
        self.initial_balance.saturating_mul(i64::try_from(self.accounts).unwrap_or(i64::MAX))
    }

    /// Creates the table and the accounts with their initial balance (idempotent).
    pub async fn setup(&self, endpoints: &Endpoints) -> Result<()> {
        let rows: Vec<String> = (0..self.accounts).map(|id| format!("({id}, {})", self.initial_balance)).collect();
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS kit_accounts (id bigint PRIMARY KEY, balance bigint NOT NULL); \
             INSERT INTO kit_accounts (id, balance) VALUES {} ON CONFLICT (id) DO NOTHING;",
            rows.join(", ")
        );
        setup_sql(endpoints, &sql, SETUP_TIMEOUT).await
    }

    /// Runs the clients until `until`; returns when all have stopped.
    pub async fn run(&self, endpoints: &Endpoints, recorder: &Recorder, seed: Seed, until: Instant) {
        run_clients(self.clients, |k| {
            let (this, endpoints, recorder) = (self.clone(), endpoints.clone(), recorder.clone());
            async move { this.client(k, endpoints, recorder, seed.derive(k), until).await }
        })
        .await;
    }

    async fn client(&self, k: u64, endpoints: Endpoints, recorder: Recorder, seed: Seed, until: Instant) {
        let mut rng = seed.rng();
        let timeout = endpoints.op_timeout;
        let mut session = Session::new(endpoints, k as usize);
        let accounts = self.accounts.max(2);
        while Instant::now() < until {
            let op = if rng.gen_range(0..100) < self.read_percent {
                Op::ReadAll
            } else {
                let from = rng.gen_range(0..accounts);
                let to = (from + rng.gen_range(1..accounts)) % accounts;
                Op::Transfer { from, to, amount: rng.gen_range(1..=self.max_transfer.max(1)) }
            };
            let Some(client) = session.client(until).await else { break };
            let pending = recorder.invoke(self.first_client + k, op.clone());
            let result = match op {
                Op::Transfer { from, to, amount } => {
                    let mut commit_sent = false;
                    match tokio::time::timeout(timeout, transfer(client, from, to, amount, &mut commit_sent)).await {
                        // Nothing commits without COMMIT: a transaction cut short before it is a failure.
                        Err(_) if !commit_sent => Ok(Err(Failure::Definite("timed out before COMMIT".into()))),
                        other => other,
                    }
                }
                _ => tokio::time::timeout(timeout, read_all(client)).await,
            };
            session.finish(pending, result);
        }
    }

    /// One successful balance read (retrying), recorded in the history.
    pub async fn read_final(&self, endpoints: &Endpoints, recorder: &Recorder) -> Result<()> {
        let until = Instant::now() + SETUP_TIMEOUT;
        let mut session = Session::new(endpoints.clone(), 0);
        loop {
            let Some(client) = session.client(until).await else {
                bail!("no node answered a final balance read in {SETUP_TIMEOUT:?}")
            };
            let pending = recorder.invoke(FINAL_READER, Op::ReadAll);
            let result = tokio::time::timeout(endpoints.op_timeout, read_all(client)).await;
            if session.finish(pending, result).is_ok() {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// One transfer transaction. On any error the caller drops the connection,
/// which rolls back whatever is open.
async fn transfer(client: &Client, from: u64, to: u64, amount: i64, commit_sent: &mut bool) -> Result<Output, Failure> {
    let id = |a: u64| i64::try_from(a).map_err(|_| Failure::Definite(format!("account {a} out of range")));
    let before = |e: tokio_postgres::Error| Failure::before_commit(&e);
    client.batch_execute("BEGIN").await.map_err(before)?;
    let debited = client
        .execute(
            "UPDATE kit_accounts SET balance = balance - $2 WHERE id = $1 AND balance >= $2",
            &[&id(from)?, &amount],
        )
        .await
        .map_err(before)?;
    if debited != 1 {
        return Err(Failure::Definite(format!("refused: account {from} lacks {amount}")));
    }
    let credited = client
        .execute("UPDATE kit_accounts SET balance = balance + $2 WHERE id = $1", &[&id(to)?, &amount])
        .await
        .map_err(before)?;
    if credited != 1 {
        return Err(Failure::Definite(format!("no account {to}")));
    }
    *commit_sent = true;
    client.batch_execute("COMMIT").await.map_err(|e| Failure::of(&e))?;
    Ok(Output::Done)
}

async fn read_all(client: &Client) -> Result<Output, Failure> {
    let rows =
        client.query("SELECT id, balance FROM kit_accounts ORDER BY id", &[]).await.map_err(|e| Failure::of(&e))?;
    let mut balances = BTreeMap::new();
    for row in rows {
        let decoded = row.try_get::<_, i64>(0).and_then(|id| Ok((id, row.try_get::<_, i64>(1)?)));
        let (id, balance) = decoded.map_err(|e| Failure::Indefinite(format!("undecodable balance row: {e}")))?;
        let id = u64::try_from(id).map_err(|_| Failure::Indefinite(format!("negative account id {id}")))?;
        balances.insert(id, balance);
    }
    Ok(Output::Balances(balances))
}
