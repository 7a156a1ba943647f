"""The commands a newcomer runs first, run as they would run them: as processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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


def test_demo_runs_the_whole_pipeline_and_prints_the_report(tmp_path: Path) -> None:
    result = clanpulse("demo", "--dir", "demo", "--members", "20", "--days", "10", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Activity: top" in result.stdout
    assert "Messages 30d" in result.stdout
    assert "harvested" in result.stderr and "0 new (nothing is ever counted twice)" in result.stderr
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
