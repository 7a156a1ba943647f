"""The commands a newcomer runs first, run as they would run them: as processes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx2 as httpx

from clanpulse.store.migrate import head_revision


def clanpulse(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CLANPULSE_")}
    return subprocess.run(
        [sys.executable, "-m", "clanpulse.cli", *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_init_creates_the_default_database_in_the_working_directory(tmp_path: Path) -> None:
    result = clanpulse("init", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "clanpulse.db").exists()
    assert f"schema is at revision {head_revision()}" in result.stderr
    again = clanpulse("init", cwd=tmp_path)  # upgrading a current database changes nothing
    assert again.returncode == 0 and head_revision() in again.stderr


def test_demo_runs_the_whole_pipeline_prints_the_report_and_serves_the_dashboard(
    tmp_path: Path,
) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CLANPULSE_")}
    args = ["demo", "--dir", "demo", "--members", "20", "--days", "10", "--serve-seconds", "120"]
    demo = subprocess.Popen(
        [sys.executable, "-m", "clanpulse.cli", *args],
        cwd=tmp_path,
        env=clean,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert demo.stderr is not None
        seen = []
        for line in demo.stderr:  # the address comes last, once the server listens
            seen.append(line)
            found = re.search(r"The dashboard on the demo data: (http://127\.0\.0\.1:\d+)/", line)
            if found:
                break
        else:
            raise AssertionError("".join(seen))
        address = found.group(1)
        page = httpx.get(address + "/", timeout=30)
        assert page.status_code == 200 and "clanpulse" in page.text
        overview = httpx.get(address + "/api/v1/overview", timeout=30).json()
        assert overview["members"] > 0 and overview["messages"] > 0
        demo.send_signal(signal.SIGINT)  # Ctrl-C ends it at once, cleanly
        out, _ = demo.communicate(timeout=30)
    finally:
        demo.kill()
    assert demo.returncode == 0, "".join(seen)
    stderr = "".join(seen)
    assert "Activity: top" in out
    assert "Messages 30d" in out
    assert "harvested" in stderr and "0 new (nothing is ever counted twice)" in stderr
    database = tmp_path / "demo" / "clanpulse-demo.db"
    assert database.exists()
    report = clanpulse(
        "report",
        "activity",
        "--format",
        "json",
        cwd=tmp_path,
        env={"CLANPULSE_DATABASE_URL": f"sqlite:///{database}"},
    )
    assert report.returncode == 0, report.stderr
    assert '"messages"' in report.stdout
