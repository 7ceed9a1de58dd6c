//! The README's first command: `shoal demo` starts a three-node cluster,
//! loads the sample data through the PostgreSQL protocol, runs its tour and
//! shows a failover. `--exit` makes it
//! stop after the tour instead of waiting for Ctrl-C.

mod common;

use std::process::Command;

#[test]
fn demo_loads_sample_data_and_runs_the_tour() {
    // The demo's three nodes use pg, pg+1 (rpc), http, each plus 10·(i−1):
    // take them from this test's own range (29000-29999), all free.
    let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
    let (pg, http) = (29000..29900)
        .step_by(50)
        .map(|base| (base, base + 30))
        .find(|(pg, http)| (0..3).all(|i| free(pg + 10 * i) && free(pg + 10 * i + 1) && free(http + 10 * i)))
        .expect("a free port range for the demo");
    let output = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["demo", "--exit", "--pg", &format!("127.0.0.1:{pg}"), "--http", &format!("127.0.0.1:{http}")])
        .output()
        .expect("run shoal demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "demo failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    // The tour's first query groups the sample orders by user.
    assert!(stdout.contains("Orders per user"), "{stdout}");
    assert!(stdout.contains("Ada"), "sample users missing:\n{stdout}");
    assert!(stdout.contains("(8 rows)"), "expected 8 users in the tour:\n{stdout}");
    assert!(stdout.contains("Connect with:"), "{stdout}");
    // The sample tables are distributed, and EXPLAIN shows a pinned key's route.
    assert!(stdout.contains("Route: orders: 1 of 4 shards (user_id = 3 → shard"), "{stdout}");
    // Three nodes: the leader is stopped, another takes the write, and the
    // old leader comes back with it.
    assert!(stdout.contains("Failover: stopping node"), "{stdout}");
    assert!(stdout.contains("sees the write made while it was down: yes"), "{stdout}");
}
