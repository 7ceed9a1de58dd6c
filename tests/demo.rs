//! The README's first command: `shoal demo` starts a node, loads the sample
//! data through the PostgreSQL protocol and runs its tour. `--exit` makes it
//! stop after the tour instead of waiting for Ctrl-C.

mod common;

use std::process::Command;

#[test]
fn demo_loads_sample_data_and_runs_the_tour() {
    let [pg, _, http] = common::free_ports();
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
}
