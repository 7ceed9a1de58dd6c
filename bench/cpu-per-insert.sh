#!/usr/bin/env bash
# CPU time per replicated insert on each node of a three-node Shoal cluster
# (the figures in docs/benchmarks.md's replication section).
#
#   bench/cpu-per-insert.sh [BINARY] [SECONDS] [CLIENTS]
#
# Starts three `shoal server` processes on ports 29101-29303 in a temporary
# directory, warms up for 3 s, then runs pgbench's single-row INSERT script
# for SECONDS with CLIENTS clients against the leader (node 1) and prints
# TPS; the leader's statements per write batch and mean Raft round, and the
# machine's CPU split and CPU per insert over all processes (pgbench and the
# kernel included); and per node, (utime + stime from /proc/<pid>/stat) ÷
# inserts, and the mean fdatasync time and fsyncs per 100 inserts of its
# Raft logs (from /metrics). Needs pgbench, psql
# (postgresql-client, postgresql-contrib) and curl. With
# PERF_SECONDS=n it also records the leader with
# `perf record -F 499 --call-graph dwarf` for n seconds into leader.perf.data
# in the current directory (the source of the profile shares quoted there).
# Each node runs WORKER_THREADS worker threads (default: the machine's CPUs
# divided among the three nodes, at least one, as `shoal bench-cluster` does).
set -euo pipefail
binary=${1:-target/release/shoal}
seconds=${2:-10}
clients=${3:-16}
binary=$(realpath "$binary")
threads=${WORKER_THREADS:-$(( $(nproc) / 3 > 0 ? $(nproc) / 3 : 1 ))}
dir=$(mktemp -d -t shoal-cpu-XXXXXX)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT

start() { # node, extra args...
  local n=$1; shift
  "$binary" server --data "$dir/d$n" --pg "127.0.0.1:29${n}01" --rpc "127.0.0.1:29${n}02" \
    --http "127.0.0.1:29${n}03" --worker-threads "$threads" "$@" >"$dir/n$n.log" 2>&1 &
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

hz=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# fsync count and total µs of a node's Raft logs, from its /metrics.
fsyncs() { curl -s "http://127.0.0.1:29${1}03/metrics" | awk '/^shoal_log_fsyncs\{/ {n += $2} /^shoal_log_fsync_micros\{/ {m += $2} END {print n + 0, m + 0}'; }
# The data group's write batches, their statements, and its committed
# proposals with their total proposal-to-applied µs, on the leader (node 1).
rounds() { curl -s "http://127.0.0.1:29103/metrics" | awk '
  /^shoal_write_batches\{group="1"\}/ {b = $2} /^shoal_write_batch_statements\{group="1"\}/ {s = $2}
  /^shoal_raft_proposals_committed\{group="1"\}/ {p = $2} /^shoal_raft_proposal_micros\{group="1"\}/ {m = $2}
  END {print b + 0, s + 0, p + 0, m + 0}'; }
# Machine-wide CPU ticks: user+nice, system+irq+softirq, idle, iowait.
cpu() { awk '/^cpu / {print $2 + $3, $4 + $7 + $8, $5, $6}' /proc/stat; }
before=(); for p in "${pids[@]}"; do before+=("$(ticks "$p")"); done
fsyncs_before=(); for n in 1 2 3; do fsyncs_before+=("$(fsyncs $n)"); done
read -r b0 s0 p0 m0 <<<"$(rounds)"
read -r u0 k0 i0 w0 <<<"$(cpu)"
if [ -n "${PERF_SECONDS:-}" ]; then
  (sleep 1; perf record -F 499 --call-graph dwarf,16384 -p "${pids[0]}" -o leader.perf.data -- sleep "$PERF_SECONDS" >/dev/null 2>&1) &
fi
out=$(pgbench -n -f "$dir/insert.sql" -c "$clients" -j 4 -T "$seconds" "$conn" 2>&1)
inserts=$(echo "$out" | awk '/number of transactions actually processed/ {print $NF}')
read -r b1 s1 p1 m1 <<<"$(rounds)"
read -r u1 k1 i1 w1 <<<"$(cpu)"
echo "$out" | grep '^tps'
echo "leader: $(( (s1 - s0) * 10 / (b1 - b0 + 1) )) statements per 10 write batches, $(( (m1 - m0) / (p1 - p0 + 1) )) µs mean Raft round (proposal to applied)"
total=$(( (u1 - u0) + (k1 - k0) + (i1 - i0) + (w1 - w0) + 1 ))
echo "machine: $(( (u1 - u0) * 100 / total ))% user, $(( (k1 - k0) * 100 / total ))% system, $(( (i1 - i0) * 100 / total ))% idle, $(( (w1 - w0) * 100 / total ))% iowait"
echo "machine CPU per insert (all processes): $(( ((u1 - u0) + (k1 - k0)) * 1000000 / hz / inserts )) µs"
for i in 0 1 2; do
  used=$(( $(ticks "${pids[$i]}") - before[i] ))
  read -r n0 m0 <<<"${fsyncs_before[$i]}"
  read -r n1 m1 <<<"$(fsyncs $((i + 1)))"
  echo "node $((i + 1)): $(( used * 1000000 / hz / inserts )) µs CPU per insert, $(( (m1 - m0) / (n1 - n0 + 1) )) µs per log fsync, $(( (n1 - n0) * 100 / inserts )) fsyncs per 100 inserts"
done
