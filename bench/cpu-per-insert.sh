#!/usr/bin/env bash
# CPU time per replicated insert on each node of a three-node Shoal cluster
# (the figures in docs/benchmarks.md's replication section).
#
#   bench/cpu-per-insert.sh [BINARY] [SECONDS] [CLIENTS]
#
# Starts three `shoal server` processes on ports 29101-29303 in a temporary
# directory, warms up for 3 s, then runs pgbench's single-row INSERT script
# for SECONDS with CLIENTS clients against the leader (node 1) and prints
# TPS and, per node, (utime + stime from /proc/<pid>/stat) ÷ inserts and the
# mean fdatasync time of its Raft logs (from /metrics). Needs pgbench, psql
# (postgresql-client, postgresql-contrib) and curl. With
# PERF_SECONDS=n it also records the leader with
# `perf record -F 499 --call-graph dwarf` for n seconds into leader.perf.data
# in the current directory (the source of the profile shares quoted there).
set -euo pipefail
binary=${1:-target/release/shoal}
seconds=${2:-10}
clients=${3:-16}
binary=$(realpath "$binary")
dir=$(mktemp -d -t shoal-cpu-XXXXXX)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT

start() { # node, extra args...
  local n=$1; shift
  "$binary" server --data "$dir/d$n" --pg "127.0.0.1:29${n}01" --rpc "127.0.0.1:29${n}02" \
    --http "127.0.0.1:29${n}03" "$@" >"$dir/n$n.log" 2>&1 &
  pids+=($!)
  sleep 3
}
start 1
start 2 --join 127.0.0.1:29102
start 3 --join 127.0.0.1:29102
sleep 2

conn="host=127.0.0.1 port=29101 user=shoal dbname=shoal"
psql "$conn" -qc "CREATE TABLE bench_ins (id BIGSERIAL PRIMARY KEY, k INTEGER NOT NULL, v TEXT NOT NULL)"
printf '%s\n' '\set k random(1, 1000000)' "INSERT INTO bench_ins (k, v) VALUES (:k, 'payload');" >"$dir/insert.sql"
pgbench -n -f "$dir/insert.sql" -c "$clients" -j 4 -T 3 "$conn" >/dev/null 2>&1

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# fsync count and total µs of a node's Raft logs, from its /metrics.
fsyncs() { curl -s "http://127.0.0.1:29${1}03/metrics" | awk '/^shoal_log_fsyncs\{/ {n += $2} /^shoal_log_fsync_micros\{/ {m += $2} END {print n + 0, m + 0}'; }
before=(); for p in "${pids[@]}"; do before+=("$(ticks "$p")"); done
fsyncs_before=(); for n in 1 2 3; do fsyncs_before+=("$(fsyncs $n)"); done
if [ -n "${PERF_SECONDS:-}" ]; then
  (sleep 1; perf record -F 499 --call-graph dwarf,16384 -p "${pids[0]}" -o leader.perf.data -- sleep "$PERF_SECONDS" >/dev/null 2>&1) &
fi
out=$(pgbench -n -f "$dir/insert.sql" -c "$clients" -j 4 -T "$seconds" "$conn" 2>&1)
inserts=$(echo "$out" | awk '/number of transactions actually processed/ {print $NF}')
echo "$out" | grep '^tps'
hz=$(getconf CLK_TCK)
for i in 0 1 2; do
  used=$(( $(ticks "${pids[$i]}") - before[i] ))
  read -r n0 m0 <<<"${fsyncs_before[$i]}"
  read -r n1 m1 <<<"$(fsyncs $((i + 1)))"
  echo "node $((i + 1)): $(( used * 1000000 / hz / inserts )) µs CPU per insert, $(( (m1 - m0) / (n1 - n0 + 1) )) µs per log fsync"
done
