#!/usr/bin/env python3
"""Where a profiled bench's CPU went, by thread group and by kind of code.

Reads `perf script -F comm,tid,time,ip,sym,dso` (of `perf record -e cpu-clock`, which needs
no hardware counters, so it works on this project's VMs) on stdin, and prints, for each
group of threads (the bench names them), its samples split into libcrypto (the floor's work), the kernel's sleep and
wake-up path (the context switch: `finish_task_switch` and the interrupt-enabling unlocks where
the deferred timer samples land), the rest of the kernel (TCP, epoll, syscalls), libc
(malloc, memcpy, locks) and everything else (the bench binary: the client, hyper, tokio), then
the top symbols outside libcrypto. Groups: the bench's server thread, the floor's threads, the
blocking callers, the tokio workers (async callers) and the other threads (the main thread).
Per call, divide a group's samples by the calls made (and by the sampling rate for seconds).

    WECHATPAY_BENCH_CASES=async16 WECHATPAY_BENCH_ROUNDS=1 WECHATPAY_BENCH_CALLS=6000 \
      perf record -F 4999 -e cpu-clock -o perf.data target/release/deps/concurrent-… --bench
    perf script -i perf.data -F comm,tid,time,ip,sym,dso | python3 benches/perf_split.py
"""

import collections
import sys

WAKE = ("finish_task_switch", "_raw_spin_unlock_irqrestore", "_raw_spin_unlock_irq")


def group(comm):
    if comm.startswith("bench-server"):
        return "server"
    if comm.startswith("bench-floor"):
        return "floor (sign + verify alone)"
    if comm.startswith("bench-caller"):
        return "blocking callers"
    if comm.startswith(("tokio-rt-worker", "tokio-runtime")):
        return "async callers (tokio workers)"
    return "other threads"


def kind(sym, dso):
    if "libcrypto" in dso:
        return "libcrypto"
    if "kernel" in dso:
        return "kernel: sleep/wake" if sym.startswith(WAKE) else "kernel: other"
    if "libc.so" in dso:
        return "libc"
    return "other code"


def main():
    kinds = collections.defaultdict(collections.Counter)
    symbols = collections.defaultdict(collections.Counter)
    for line in sys.stdin:
        # "comm tid time: ip sym+off (dso)"; comm has no spaces in this bench.
        parts = line.split(None, 4)
        if len(parts) < 5 or not parts[2].endswith(":"):
            continue
        rest = parts[4].rstrip()
        dso = rest[rest.rfind("(") + 1 : -1] if rest.endswith(")") else ""
        sym = rest[: rest.rfind("(")].strip() if dso else rest
        sym = sym.split("+0x")[0]
        g, k = group(parts[0]), kind(sym, dso)
        kinds[g][k] += 1
        if k != "libcrypto":
            symbols[g][sym or "[unknown]"] += 1
    for g in sorted(kinds):
        total = sum(kinds[g].values())
        print(f"{g}: {total} samples")
        for k, n in kinds[g].most_common():
            print(f"  {k:<20} {n:7d}  {100 * n / total:5.1f} %")
        for sym, n in symbols[g].most_common(12):
            print(f"    {n:6d}  {sym[:100]}")


if __name__ == "__main__":
    main()
