#!/usr/bin/env python3
"""fdatasync latency of small appends: growing a file vs overwriting zeros.

    python3 bench/fdatasync.py [DIR] [PROCESSES]

Runs PROCESSES (default 3, like three replicas on one disk) at once, each
appending 2000 300-byte records to its own file in DIR (default: the
current directory) and fdatasync-ing after each one; first with files that
grow, then with files zero-filled beforehand. Prints each process's p50 and
p90 (the figures in docs/benchmarks.md, replication section).
"""
import os
import sys
import time
from multiprocessing import Process


def run(path, prealloc):
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    if prealloc:
        os.write(fd, b"\0" * (8 << 20))
        os.fsync(fd)
        os.lseek(fd, 0, os.SEEK_SET)
    time.sleep(0.5)  # let every process finish its set-up
    took = []
    for _ in range(2000):
        os.write(fd, b"x" * 300)
        started = time.perf_counter()
        os.fdatasync(fd)
        took.append(time.perf_counter() - started)
    os.close(fd)
    os.remove(path)
    took.sort()
    kind = "over zeros" if prealloc else "growing   "
    print(f"{kind} p50 {took[1000] * 1e6:.0f} µs  p90 {took[1800] * 1e6:.0f} µs", flush=True)


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else "."
    processes = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    for prealloc in (False, True):
        workers = [
            Process(target=run, args=(os.path.join(directory, f"fdatasync-bench.{i}"), prealloc))
            for i in range(processes)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()


if __name__ == "__main__":
    main()
