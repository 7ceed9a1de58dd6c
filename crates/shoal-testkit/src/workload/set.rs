//! The set workload: inserts of never-reused ids, checked by
//! [`check_lost_writes`](crate::check_lost_writes) against the ids present
//! after healing.
//!
//! ```text
//!   kit_set(id bigint PRIMARY KEY, client bigint NOT NULL)
//!   insert  INSERT INTO kit_set (id, client) VALUES ($1, $2)
//!   id      client << 40 | run << 24 | sequence        unique per workload instance
//! ```

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, Result};
use tokio::time::Instant;

use super::{run_clients, setup_sql, Endpoints, Failure, Session, SETUP_TIMEOUT};
use crate::history::{ClientId, Op, Output, Recorder};

/// Inserts per client per run (the id's sequence field).
const MAX_SEQUENCE: u64 = 1 << 24;
/// Runs per workload instance (the id's run field).
const MAX_RUNS: u64 = 1 << 16;
/// Client ids must fit below bit 63 after the shift.
const MAX_CLIENT: ClientId = 1 << 23;

/// Configuration of the set workload. Clones share the run counter, so ids
/// stay unique across runs.
#[derive(Clone, Debug)]
pub struct SetWorkload {
    pub clients: u64,
    /// Client ids are `first_client..first_client + clients`.
    pub first_client: ClientId,
    runs: Arc<AtomicU64>,
}

impl Default for SetWorkload {
    fn default() -> Self {
        SetWorkload::new(2, 2000)
    }
}

impl SetWorkload {
    pub fn new(clients: u64, first_client: ClientId) -> SetWorkload {
        SetWorkload { clients, first_client, runs: Arc::new(AtomicU64::new(0)) }
    }

    /// Creates the table (idempotent).
    pub async fn setup(&self, endpoints: &Endpoints) -> Result<()> {
        let sql = "CREATE TABLE IF NOT EXISTS kit_set (id bigint PRIMARY KEY, client bigint NOT NULL)";
        setup_sql(endpoints, sql, SETUP_TIMEOUT).await
    }

    /// Runs the clients until `until`; returns when all have stopped.
    pub async fn run(&self, endpoints: &Endpoints, recorder: &Recorder, until: Instant) -> Result<()> {
        let run = self.runs.fetch_add(1, Ordering::Relaxed);
        if run >= MAX_RUNS || self.first_client.checked_add(self.clients).is_none_or(|end| end > MAX_CLIENT) {
            return Err(anyhow!("set workload: ids would not be unique (run {run}, clients up to {MAX_CLIENT})"));
        }
        run_clients(self.clients, |k| {
            let client_id = self.first_client + k;
            let (endpoints, recorder) = (endpoints.clone(), recorder.clone());
            async move { client(client_id, run, k, endpoints, recorder, until).await }
        })
        .await;
        Ok(())
    }

    /// The ids present now (retrying until a node answers).
    pub async fn read_final(&self, endpoints: &Endpoints) -> Result<BTreeSet<i64>> {
        let until = Instant::now() + SETUP_TIMEOUT;
        let mut session = Session::new(endpoints.clone(), 0);
        let mut last_error = String::from("no node accepted a connection");
        while let Some(client) = session.client(until).await {
            match tokio::time::timeout(endpoints.op_timeout * 5, client.query("SELECT id FROM kit_set", &[])).await {
                Ok(Ok(rows)) => {
                    return rows.iter().map(|r| r.try_get::<_, i64>(0).map_err(|e| anyhow!("bad id: {e}"))).collect()
                }
                Ok(Err(e)) => last_error = e.to_string(),
                Err(_) => last_error = "timed out".into(),
            }
            session.client = None;
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Err(anyhow!("no final read of kit_set within {SETUP_TIMEOUT:?}: {last_error}"))
    }
}

async fn client(client_id: ClientId, run: u64, k: u64, endpoints: Endpoints, recorder: Recorder, until: Instant) {
    let timeout = endpoints.op_timeout;
    let mut session = Session::new(endpoints, k as usize);
    for sequence in 0..MAX_SEQUENCE {
        if Instant::now() >= until {
            break;
        }
        // In range by the checks in `run`: client < 2^23, run < 2^16, sequence < 2^24.
        let id = ((client_id << 40) | (run << 24) | sequence) as i64;
        let Some(client) = session.client(until).await else { break };
        let pending = recorder.invoke(client_id, Op::Insert { id });
        let result = tokio::time::timeout(timeout, insert(client, id, client_id as i64)).await;
        session.finish(pending, result);
    }
}

async fn insert(client: &tokio_postgres::Client, id: i64, client_id: i64) -> Result<Output, Failure> {
    client
        .execute("INSERT INTO kit_set (id, client) VALUES ($1, $2)", &[&id, &client_id])
        .await
        .map(|_| Output::Done)
        .map_err(|e| Failure::of(&e))
}
