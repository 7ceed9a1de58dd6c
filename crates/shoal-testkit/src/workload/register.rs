//! The register workload: reads, blind writes and compare-and-sets on a few
//! keys, checked for per-key linearizability by
//! [`check_registers`](crate::check_registers).
//!
//! ```text
//!   kit_registers(k bigint PRIMARY KEY, v bigint NOT NULL)   one row per key, v = 0 at setup
//!   read   SELECT v FROM kit_registers WHERE k = $1
//!   write  UPDATE kit_registers SET v = $2 WHERE k = $1
//!   cas    UPDATE kit_registers SET v = $3 WHERE k = $1 AND v = $2   (1 row: swapped, 0: not)
//! ```
//!
//! Values come from a small range so compare-and-sets often succeed and
//! concurrent ops often collide on a value; the checker copes with the
//! resulting ambiguity.

use anyhow::{bail, Result};
use rand::Rng;
use tokio::time::Instant;
use tokio_postgres::Client;

use super::{run_clients, setup_sql, Endpoints, Failure, Session, SETUP_TIMEOUT};
use crate::check::LinearizabilityConfig;
use crate::history::{ClientId, Op, Output, Recorder};
use crate::seed::Seed;

/// Client id of the reads made by [`RegisterWorkload::read_final`].
pub const FINAL_READER: ClientId = ClientId::MAX;

/// Configuration of the register workload.
#[derive(Clone, Debug)]
pub struct RegisterWorkload {
    pub keys: u64,
    pub clients: u64,
    /// Written values are drawn from `0..values`.
    pub values: i64,
    pub read_percent: u32,
    pub cas_percent: u32,
    /// Client ids are `first_client..first_client + clients`.
    pub first_client: ClientId,
}

impl Default for RegisterWorkload {
    fn default() -> Self {
        RegisterWorkload { keys: 4, clients: 4, values: 5, read_percent: 50, cas_percent: 20, first_client: 0 }
    }
}

impl RegisterWorkload {
    /// Every register's value after [`RegisterWorkload::setup`].
    pub const INITIAL: i64 = 0;

    /// The checker configuration that matches this workload's initial state.
    pub fn check_config(&self) -> LinearizabilityConfig {
        LinearizabilityConfig { initial: Some(Self::INITIAL), ..LinearizabilityConfig::default() }
    }

    /// Creates the table and one row per key (idempotent).
    pub async fn setup(&self, endpoints: &Endpoints) -> Result<()> {
        let rows: Vec<String> = (0..self.keys).map(|k| format!("({k}, {})", Self::INITIAL)).collect();
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS kit_registers (k bigint PRIMARY KEY, v bigint NOT NULL); \
             INSERT INTO kit_registers (k, v) VALUES {} ON CONFLICT (k) DO NOTHING;",
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
        let values = self.values.max(1);
        while Instant::now() < until {
            let key = rng.gen_range(0..self.keys.max(1));
            let roll = rng.gen_range(0..100);
            let op = if roll < self.read_percent {
                Op::Read { key }
            } else if roll < self.read_percent.saturating_add(self.cas_percent) {
                Op::Cas { key, expect: rng.gen_range(0..values), new: rng.gen_range(0..values) }
            } else {
                Op::Write { key, value: rng.gen_range(0..values) }
            };
            let Some(client) = session.client(until).await else { break };
            let pending = recorder.invoke(self.first_client + k, op.clone());
            let result = tokio::time::timeout(timeout, execute(client, &op)).await;
            session.finish(pending, result);
        }
    }

    /// Reads every key once successfully (retrying), recording the reads in
    /// the history: run after healing, they pin each register's final value.
    pub async fn read_final(&self, endpoints: &Endpoints, recorder: &Recorder) -> Result<()> {
        let until = Instant::now() + SETUP_TIMEOUT;
        let mut session = Session::new(endpoints.clone(), 0);
        for key in 0..self.keys {
            loop {
                let Some(client) = session.client(until).await else {
                    bail!("no node answered a final read of register {key} in {SETUP_TIMEOUT:?}")
                };
                let op = Op::Read { key };
                let pending = recorder.invoke(FINAL_READER, op.clone());
                let result = tokio::time::timeout(endpoints.op_timeout, execute(client, &op)).await;
                if session.finish(pending, result).is_ok() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }
}

async fn execute(client: &Client, op: &Op) -> Result<Output, Failure> {
    let key = |k: u64| i64::try_from(k).map_err(|_| Failure::Definite(format!("key {k} out of range")));
    match *op {
        Op::Read { key: k } => {
            let row = client
                .query_opt("SELECT v FROM kit_registers WHERE k = $1", &[&key(k)?])
                .await
                .map_err(|e| Failure::of(&e))?;
            match row {
                None => Ok(Output::Read(None)),
                Some(row) => row
                    .try_get::<_, i64>(0)
                    .map(|v| Output::Read(Some(v)))
                    .map_err(|e| Failure::Indefinite(format!("undecodable read: {e}"))),
            }
        }
        Op::Write { key: k, value } => {
            let n = client
                .execute("UPDATE kit_registers SET v = $2 WHERE k = $1", &[&key(k)?, &value])
                .await
                .map_err(|e| Failure::of(&e))?;
            // No row: the register is gone; the reads will show it.
            if n == 1 {
                Ok(Output::Done)
            } else {
                Err(Failure::Definite(format!("write matched {n} rows")))
            }
        }
        Op::Cas { key: k, expect, new } => {
            let n = client
                .execute("UPDATE kit_registers SET v = $3 WHERE k = $1 AND v = $2", &[&key(k)?, &expect, &new])
                .await
                .map_err(|e| Failure::of(&e))?;
            Ok(Output::Cas(n == 1))
        }
        _ => Err(Failure::Definite(format!("not a register op: {op:?}"))),
    }
}
