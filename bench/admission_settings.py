"""Admission settings side by side at one open-loop rate: what each sheds at a load the server can
carry, and at what latency.

Starts a fresh PostgreSQL database seeded as ``bench/harness.py`` seeds it, then for each setting
given (``NAME=value[,NAME=value…]``, or ``default``) — twice, alternating, because this machine is
noisy — an orderfast with the harness's workers and those settings, 5 s of warm-up at half the
rate, then ``--duration`` seconds of create-orders (3 lines, a fresh key each) at ``--rate``.

    python bench/admission_settings.py --rate 2100 ORDERFAST_ADMISSION_MIN=64 default ORDERFAST_ADMISSION=false
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import harness, openloop  # noqa: E402

from orderfast.http.auth import mint_token  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, required=True, help="create-orders per second")
    ap.add_argument("--duration", type=float, default=15)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("settings", nargs="+", help="NAME=value[,NAME=value...] or default")
    args = ap.parse_args()
    configs = [{} if c == "default" else dict(kv.split("=", 1) for kv in c.split(",")) for c in args.settings]
    token = mint_token(harness.SECRET, "bench-user", ttl=86_400)
    database = harness.prepared_database(f"orderfast_admission_{os.getpid()}")
    with tempfile.TemporaryDirectory() as tmp, database as (dsn, _):
        for n in range(args.rounds):
            for i, config in enumerate(configs):
                with harness.orderfast(dsn, Path(tmp) / f"{n}-{i}", **config) as target:
                    host = target.url.removeprefix("http://")
                    make = harness.create_request(host, token, 3)
                    openloop.run_blocking(target.url, args.rate / 2, 5, make, connections=256)
                    with harness.cpu_meter(target) as cpu:
                        make = harness.create_request(host, token, 3)
                        r = openloop.run_blocking(target.url, args.rate, args.duration, make, connections=256)
                    label = ",".join(f"{k}={v}" for k, v in config.items()) or "default"
                    print(
                        f"{label}: {r.achieved:.0f}/s, shed or other non-2xx {r.non2xx} of {r.sent}, "
                        f"2xx P50 {r.ok_percentile_ms(50):.1f} ms, P99 {r.ok_percentile_ms(99):.1f} ms, "
                        f"server {cpu['server_cores']} cores",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
