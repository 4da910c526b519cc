"""Servers side by side at fixed open-loop rates: settings, or the code of another revision.

This machine is noisy (runs minutes apart differ by more than most changes), so a change is judged
against its alternative in one sitting, alternating, several rounds. Starts a fresh PostgreSQL
database seeded as ``bench/harness.py`` seeds it, then for each round and each server given — a
setting (``NAME=value[,NAME=value…]``), ``default``, or ``rev=REV`` (the Python code of git
revision REV, checked out in a temporary worktree and run with this checkout's compiled core:
compare revisions whose Rust is the same) — an orderfast with ``--workers`` workers, admission
off (so that nothing is shed: the rates measure the write path), 5 s at half the first rate, then
``--duration`` seconds at each of ``--rates`` (create-orders, 3 lines, a fresh key each).

Per step: goodput (2xx within 1 s of their due time), 2xx P50/P99, the mean group-commit batch,
server and PostgreSQL CPU time per order (and the part of the server's spent on the workers' main
threads, where the event loop and all the Python run: one per worker, the scarce one), and the
largest worker's RSS after it. (The idempotency map is capped at 20 000 responses, as in
``bench/overload.py``; give ``ORDERFAST_IDEMPOTENCY_CAPACITY=100000`` to measure memory as shipped.)

    python bench/side_by_side.py --rates 3000,3500 --rounds 3 rev=HEAD~2 default
    python bench/side_by_side.py --rates 2400,3000 default ORDERFAST_GROUP_COMMIT_INFLIGHT=2
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import harness, openloop, overload  # noqa: E402

from orderfast.http.auth import mint_token  # noqa: E402

BATCH = ("orderfast_group_commit_batch_size_sum", "orderfast_group_commit_batch_size_count")


def batches(url: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for line in httpx.get(url + "/metrics", timeout=5).text.splitlines():
        if line.startswith(BATCH):
            name, value = line.rsplit(" ", 1)
            found[name] = float(value)
    return found


def main_threads(workers: list[psutil.Process]) -> list[float]:
    """CPU seconds of each worker's main thread (its event loop and all its Python)."""
    seconds = []
    for worker in workers:
        for thread in worker.threads():
            if thread.id == worker.pid:
                seconds.append(thread.user_time + thread.system_time)
    return seconds


def worktree(stack: ExitStack, rev: str) -> dict[str, str]:
    """The environment that runs revision ``rev``'s Python with this checkout's compiled core."""
    path = Path(tempfile.mkdtemp(prefix="orderfast-rev-"))
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(path), rev], check=True)
    stack.callback(subprocess.run, ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], check=False)
    for core in (ROOT / "python" / "orderfast").glob("_core*.so"):
        shutil.copy2(core, path / "python" / "orderfast" / core.name)
    return {"PYTHONPATH": str(path / "python")}


def step(target: harness.Target, make: Callable[[int], bytes], label: str, rate: float, duration: float) -> None:
    """One open-loop run at ``rate`` and its line of figures."""
    workers = target.tree()[1:]
    before = batches(target.url)
    threads0 = main_threads(workers)
    with harness.cpu_meter(target) as cpu:
        (r,) = openloop.run_phases_blocking(target.url, [(rate, duration)], make, connections=overload.CONNECTIONS)
    after = batches(target.url)
    main_s = sum(main_threads(workers)) - sum(threads0)
    count, items = (after[k] - before.get(k, 0.0) for k in reversed(BATCH))
    per_s = max(items / r.duration, 1.0)
    server_us, postgres_us = (1e6 * cpu[k] / per_s for k in ("server_cores", "postgres_cores"))
    main_us = 1e6 * main_s / r.duration / per_s
    print(
        f"{label[-40:]:40s} {rate:6.0f}/s: goodput {overload.within(r) / r.duration:6.0f}/s, "
        f"2xx P50 {r.ok_percentile_ms(50):7.1f} ms, P99 {r.ok_percentile_ms(99):7.1f} ms, "
        f"batch {items / max(count, 1.0):5.1f}, CPU per order: server {server_us:.0f} us "
        f"(the workers' Python threads {main_us:.0f}), "
        f"PostgreSQL {postgres_us:.0f} us, worker RSS {max(harness.rss_mib(target))} MiB",
        flush=True,
    )


def run(label: str, target: harness.Target, rates: list[float], duration: float, token: str) -> None:
    make = overload.requests(target.url.removeprefix("http://"), token)
    openloop.run_phases_blocking(target.url, [(rates[0] / 2, 5)], make, connections=overload.CONNECTIONS)
    for rate in rates:
        step(target, make, label, rate, duration)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="2400,3000", help="create-orders per second, comma-separated")
    ap.add_argument("--duration", type=float, default=10, help="seconds per rate")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("servers", nargs="+", help="NAME=value[,NAME=value...], default, or rev=REV")
    args = ap.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    token = mint_token(harness.SECRET, "bench-user", ttl=86_400)
    print(f"python bench/side_by_side.py {' '.join(sys.argv[1:])} on {harness.machine()}", flush=True)
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        configs: list[tuple[str, dict[str, str]]] = []
        for spec in args.servers:
            if spec == "default":
                configs.append((spec, {}))
            elif spec.startswith("rev="):
                configs.append((spec, worktree(stack, spec.removeprefix("rev="))))
            else:
                configs.append((spec, dict(kv.split("=", 1) for kv in spec.split(","))))
        dsn, _ = stack.enter_context(harness.prepared_database(f"orderfast_sbs_{os.getpid()}"))
        for n in range(args.rounds):
            for i, (label, extra) in enumerate(configs):
                data = Path(tmp) / f"{n}-{i}"
                with overload.server(dsn, data, args.workers, admission=False, extra=extra) as target:
                    run(label, target, rates, args.duration, token)


if __name__ == "__main__":
    main()
