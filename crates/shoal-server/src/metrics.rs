//! Prometheus metrics of one node, served at `/metrics`.
//!
//! Query counts and latency histograms are labelled by statement kind
//! (`select`, `insert`, `update`, `delete`, `ddl`, `transaction`, `other`).
//! Raft positions and log fsync figures are read from the groups at scrape time.

use std::sync::atomic::AtomicI64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupLabel {
    pub group: String,
}

type HistogramFamily = Family<KindLabel, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 50 µs … ~1.6 s
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// The node's metrics; see the module docs.
pub struct Metrics {
    registry: Registry,
    pub queries: Family<KindLabel, Counter>,
    pub errors: Family<KindLabel, Counter>,
    pub latency_seconds: HistogramFamily,
    pub connections: Gauge<i64, AtomicI64>,
    pub connections_total: Counter,
    pub commit_index: Family<GroupLabel, Gauge<i64, AtomicI64>>,
    pub applied_index: Family<GroupLabel, Gauge<i64, AtomicI64>>,
    pub term: Family<GroupLabel, Gauge<i64, AtomicI64>>,
    pub log_size_bytes: Family<GroupLabel, Gauge<i64, AtomicI64>>,
    pub log_fsyncs: Family<GroupLabel, Gauge<i64, AtomicI64>>,
    pub log_fsync_micros: Family<GroupLabel, Gauge<i64, AtomicI64>>,
    pub write_batches: Family<GroupLabel, Gauge<i64, AtomicI64>>,
    pub pipelined_batches: Family<GroupLabel, Gauge<i64, AtomicI64>>,
    pub batched_statements: Family<GroupLabel, Gauge<i64, AtomicI64>>,
    pub proposals_committed: Family<GroupLabel, Gauge<i64, AtomicI64>>,
    pub proposal_micros: Family<GroupLabel, Gauge<i64, AtomicI64>>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::with_prefix("shoal");
        let queries = Family::<KindLabel, Counter>::default();
        let errors = Family::<KindLabel, Counter>::default();
        let latency_seconds = HistogramFamily::new_with_constructor(latency_histogram);
        let connections = Gauge::<i64, AtomicI64>::default();
        let connections_total = Counter::default();
        registry.register("queries", "Statements executed, by kind", queries.clone());
        registry.register("query_errors", "Statements that failed, by kind", errors.clone());
        registry.register("query_latency_seconds", "Statement latency, by kind", latency_seconds.clone());
        registry.register("connections", "Open client connections", connections.clone());
        registry.register("connections_accepted", "Client connections accepted", connections_total.clone());
        let gauge_family = Family::<GroupLabel, Gauge<i64, AtomicI64>>::default;
        let (commit_index, applied_index, term) = (gauge_family(), gauge_family(), gauge_family());
        let (log_size_bytes, log_fsyncs, log_fsync_micros) = (gauge_family(), gauge_family(), gauge_family());
        registry.register("raft_commit_index", "Last committed log index per group", commit_index.clone());
        registry.register("raft_applied_index", "Last applied log index per group", applied_index.clone());
        registry.register("raft_term", "Current Raft term per group", term.clone());
        registry.register("log_size_bytes", "Size of the Raft log on disk per group", log_size_bytes.clone());
        registry.register(
            "log_fsyncs",
            "Log fsyncs performed per group (group commit: <= appends)",
            log_fsyncs.clone(),
        );
        registry.register(
            "log_fsync_micros",
            "Total microseconds spent in log fsync per group (divide by shoal_log_fsyncs for the mean)",
            log_fsync_micros.clone(),
        );
        let (write_batches, pipelined_batches) = (gauge_family(), gauge_family());
        registry.register(
            "write_batches",
            "Batches of autocommit writes proposed as one entry each, per group (on its leader)",
            write_batches.clone(),
        );
        registry.register(
            "write_batches_pipelined",
            "Write batches started while the previous one was still in its Raft round, per group",
            pipelined_batches.clone(),
        );
        let (batched_statements, proposals_committed, proposal_micros) =
            (gauge_family(), gauge_family(), gauge_family());
        registry.register(
            "write_batch_statements",
            "Statements carried by write batches, per group (divide by shoal_write_batches for the mean batch)",
            batched_statements.clone(),
        );
        registry.register(
            "raft_proposals_committed",
            "Proposals (write batches and transaction commits) this node made as leader that committed, per group",
            proposals_committed.clone(),
        );
        registry.register(
            "raft_proposal_micros",
            "Total microseconds from proposal to applied of those proposals, per group (divide by \
             shoal_raft_proposals_committed for the mean Raft round)",
            proposal_micros.clone(),
        );
        Metrics {
            registry,
            queries,
            errors,
            latency_seconds,
            connections,
            connections_total,
            commit_index,
            applied_index,
            term,
            log_size_bytes,
            log_fsyncs,
            log_fsync_micros,
            write_batches,
            pipelined_batches,
            batched_statements,
            proposals_committed,
            proposal_micros,
        }
    }
}

impl Metrics {
    /// Records one statement.
    pub fn observe(&self, kind: &str, seconds: f64, failed: bool) {
        let label = KindLabel { kind: kind.to_string() };
        self.queries.get_or_create(&label).inc();
        self.latency_seconds.get_or_create(&label).observe(seconds);
        if failed {
            self.errors.get_or_create(&label).inc();
        }
    }

    /// Updates the Raft gauges of one group.
    pub fn set_group(&self, status: &shoal_raft::GroupStatus) {
        let label = GroupLabel { group: status.id.to_string() };
        self.commit_index.get_or_create(&label).set(status.committed_index as i64);
        self.applied_index.get_or_create(&label).set(status.applied_index as i64);
        self.term.get_or_create(&label).set(status.term as i64);
        self.log_size_bytes.get_or_create(&label).set(status.log_size_bytes as i64);
        self.log_fsyncs.get_or_create(&label).set(status.log_fsyncs as i64);
        self.log_fsync_micros.get_or_create(&label).set(status.log_fsync_micros_total as i64);
        self.write_batches.get_or_create(&label).set(status.write_batches as i64);
        self.pipelined_batches.get_or_create(&label).set(status.pipelined_batches as i64);
        self.batched_statements.get_or_create(&label).set(status.batched_statements as i64);
        self.proposals_committed.get_or_create(&label).set(status.proposals_committed as i64);
        self.proposal_micros.get_or_create(&label).set(status.proposal_micros_total as i64);
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// Open connections right now.
    pub fn open_connections(&self) -> i64 {
        self.connections.get()
    }
}
