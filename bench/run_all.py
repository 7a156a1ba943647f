"""Run every benchmark, one process each, with its default parameters (``make bench``).

* ``bench/wom_harvest.py``: the Wise Old Man harvest under the real (time-scaled) limits,
  about 7 minutes;
* ``bench/clan_report.py``: the clan and activity reports on 500 members x 2 years of hourly
  readings + 1 M messages; the first run builds the database (~12 minutes, cached under
  ``bench/.cache/``), later runs only measure (a minute or two);
* ``bench/soak.py``: ``clanpulse run`` for 21 days of schedule at 3600x, its memory sampled
  (about 9 minutes);
* ``bench/web_load.py``: the JSON API under 50 concurrent clients, without and with an import
  writing into the same SQLite file, closed loop and with think time (about 7 minutes; the
  first run of a day builds the demo database, about a minute more).

``--quick`` runs smaller variants (no API-key runs; a 100-member, 90-day database) for a
smoke test in a few minutes; their figures do not answer the goals. Each benchmark is
bounded by a timeout; results land in ``bench/results/*.json`` (``--quick``: in
``bench/.cache/``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent

FULL: list[tuple[str, list[str], float]] = [
    ("wom_harvest.py", [], 30 * 60),
    ("clan_report.py", [], 75 * 60),
    ("soak.py", [], 20 * 60),
    ("web_load.py", [], 20 * 60),
]
QUICK: list[tuple[str, list[str], float]] = [
    ("wom_harvest.py", ["--skip-key", "--members", "200"], 15 * 60),
    (
        "clan_report.py",
        ["--members", "100", "--days", "90", "--messages", "100000", "--runs", "3"],
        20 * 60,
    ),
    ("soak.py", ["--days", "3"], 5 * 60),
    ("web_load.py", ["--quick"], 10 * 60),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the clanpulse benchmarks.")
    parser.add_argument("--quick", action="store_true", help="smaller variants (smoke test)")
    parser.add_argument("--postgres", metavar="URL", help="passed on to clan_report.py")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    failed = []
    for script, extra, limit in plan:
        command = [sys.executable, str(BENCH / script), *extra]
        if args.quick:
            # smoke-test figures are not the results: keep them out of bench/results/
            command += ["--output", str(BENCH / ".cache" / f"quick-{Path(script).stem}.json")]
        if script == "clan_report.py" and args.postgres:
            command += ["--postgres", args.postgres]
        print(f"\n### {' '.join(command[1:])}", flush=True)
        started = time.perf_counter()
        try:
            code = subprocess.run(command, timeout=limit, check=False).returncode
        except subprocess.TimeoutExpired:
            print(f"### {script}: stopped after {limit / 60:.0f} minutes", flush=True)
            code = -1
        print(f"### {script}: exit {code} in {time.perf_counter() - started:.0f} s", flush=True)
        if code != 0:
            failed.append(script)
    if failed:
        print(f"failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
