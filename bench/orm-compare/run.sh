#!/bin/sh
# Builds both comparison benches in release mode, runs them alternately
# three times (so background load falls on all systems alike), and prints
# the Markdown table for docs/benchmarks.md. Needs PostgreSQL on
# 127.0.0.1:5432 (user postgres, database test), like the test suite.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
target=${CARGO_TARGET_DIR:-$here/../target}
export CARGO_TARGET_DIR=$target
(cd "$here" && cargo build --release --quiet)
(cd "$here/../seaorm-compare" && cargo build --release --quiet)
out=$(mktemp -d)
for round in 1 2 3; do
    "$target/release/orm-compare" > "$out/shoal-$round.json"
    "$target/release/seaorm-compare" > "$out/seaorm-$round.json"
done
"$target/release/orm-compare" --table "$out"/*.json
rm -r "$out"
