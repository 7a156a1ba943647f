"""The JSON API keeps to its own OpenAPI schema: Schemathesis generates requests for every
operation (valid and invalid ones) and sends them over loopback to ``clanpulse serve``, a
real process over a harvested clan. No request may get a 5xx, and every response must be
one the schema declares, in the shape it declares."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import sqlite_url
from tests.web_support import clan_template

pytestmark = pytest.mark.slow

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
MAX_EXAMPLES = 25


class Served:
    """``clanpulse serve --port 0`` as a child process; its stderr is kept for reports."""

    def __init__(self, db_path: Path, cwd: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLANPULSE_")}
        env["CLANPULSE_DATABASE_URL"] = sqlite_url(db_path)  # no admin token: read-only
        self.process = subprocess.Popen(
            [sys.executable, "-m", "clanpulse.cli", "serve", "--port", "0"],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        found = threading.Event()
        self.address = ""

        def read() -> None:
            assert self.process.stderr is not None
            for line in self.process.stderr:
                self.lines.append(line)
                match = re.search(r"dashboard at (http://127\.0\.0\.1:\d+)", line)
                if match and not found.is_set():
                    self.address = match.group(1)
                    found.set()
            found.set()

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()
        if not found.wait(60) or not self.address:
            self.stop()
            raise AssertionError("clanpulse serve did not start:\n" + "".join(self.lines))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.reader.join(5)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    template = clan_template(tmp_path_factory.getbasetemp())
    work = tmp_path_factory.mktemp("api-schema")
    shutil.copy(template, work / "clanpulse.db")
    served = Served(work / "clanpulse.db", work)
    try:
        yield served
    finally:
        served.stop()
    # nothing the generated requests did may have broken the server
    assert served.process.returncode == 0, "".join(served.lines)
    assert not any("Traceback" in line for line in served.lines), "".join(served.lines)


@pytest.fixture(scope="module")
def api_schema(server: Served) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{server.address}/api/v1/openapi.json")


@dataclass
class Fuzzed:
    """What the generated requests found: per check, the failures (first few in full)."""

    requests: int = 0
    per_operation: Counter[str] = field(default_factory=Counter)
    failures: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    counts: Counter[str] = field(default_factory=Counter)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)

    def record(self, check: str, label: str, message: str) -> None:
        self.counts[check] += 1
        if len(self.failures[check]) < 3 or not any(label in f for f in self.failures[check]):
            self.failures[check].append(f"--- {label}\n{message}")

    def report(self, *checks: str) -> str:
        return "\n\n".join(
            f"{self.counts[c]} failing request(s) for {c}:\n" + "\n".join(self.failures[c])
            for c in checks
            if self.counts[c]
        )


def fuzz(operation: APIOperation, mode: GenerationMode, found: Fuzzed, base_url: str) -> None:
    label = f"{operation.label} ({mode.value})"
    session = requests.Session()

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
    )
    def send(case: schemathesis.Case) -> None:
        response = case.call(base_url=base_url, session=session, timeout=30)
        found.requests += 1
        found.per_operation[label] += 1
        found.statuses[label, response.status_code] += 1
        for check in CHECKS:
            try:
                case.validate_response(response, checks=[check])
            except FailureGroup as exc:
                found.record(check.__name__, label, str(exc))

    try:
        send()
    except Unsatisfiable:
        # no parameters at all: there is no invalid request to make
        assert mode is GenerationMode.NEGATIVE, label
    finally:
        session.close()


@pytest.fixture(scope="module")
def fuzzed(api_schema: schemathesis.BaseSchema, server: Served) -> Fuzzed:
    """Every operation, with valid and with invalid requests; each response goes through
    every check separately, so that one check's finding cannot hide another's."""
    found = Fuzzed()
    for result in api_schema.get_all_operations():
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz(result.ok(), mode, found, server.address)
    return found


def test_requests_were_generated_for_every_operation(fuzzed: Fuzzed) -> None:
    positive = [k for k in fuzzed.per_operation if k.endswith("(positive)")]
    negative = [k for k in fuzzed.per_operation if k.endswith("(negative)")]
    assert len(positive) == 12
    assert len(negative) >= 10  # all but /health and /jobs, which take no parameters
    assert fuzzed.requests >= 12 * MAX_EXAMPLES // 2
    # the valid requests reach the real figures, not only the parameter checks
    answered = {label for (label, status) in fuzzed.statuses if status == 200}
    for path in ("health", "jobs", "overview", "members", "leaderboard", "activity", "roster"):
        assert f"GET /api/v1/{path} (positive)" in answered, fuzzed.statuses
    # and the invalid ones are refused as such
    refused = {label for (label, status) in fuzzed.statuses if status == 422}
    assert "GET /api/v1/members (negative)" in refused, fuzzed.statuses


def test_no_generated_request_gets_a_server_error(fuzzed: Fuzzed) -> None:
    assert not fuzzed.counts["not_a_server_error"], fuzzed.report("not_a_server_error")


def test_every_response_body_and_content_type_matches_the_schema(fuzzed: Fuzzed) -> None:
    checks = ("response_schema_conformance", "content_type_conformance")
    assert not any(fuzzed.counts[c] for c in checks), fuzzed.report(*checks)


def test_every_status_code_is_documented(fuzzed: Fuzzed) -> None:
    assert not fuzzed.counts["status_code_conformance"], fuzzed.report("status_code_conformance")


def test_real_figures_match_the_schema(api_schema: schemathesis.BaseSchema, server: Served) -> None:
    """Generated ids rarely name a real member: ask for real ones, every metric and window."""
    with httpx.Client(base_url=f"{server.address}/api/v1", timeout=30) as client:
        listing = client.get("/members", params={"limit": 1000, "window": "90d"})
        ids = [row["member_id"] for row in listing.json()["members"]]
        assert len(ids) >= 20
        asked: list[tuple[str, str, dict[str, Any]]] = [
            ("/members", "/members", {"limit": 1000, "window": "90d"}),
            ("/members", "/members", {"sort": "name", "order": "asc", "status": "active"}),
            ("/members", "/members", {"q": "iron", "sort": "last_seen_at"}),
            ("/inactive", "/inactive", {}),
            ("/roster", "/roster", {"window": "90d"}),
            ("/jobs", "/jobs", {}),
            ("/health", "/health", {}),
        ]
        for window in ("7d", "30d", "90d"):
            asked += [
                ("/overview", "/overview", {"window": window}),
                ("/activity", "/activity", {"window": window}),
            ]
        for metric in ("messages", "xp", "ehp", "ehb", "boss_kills", "skill:slayer", "boss:zulrah"):
            asked.append(("/leaderboard", "/leaderboard", {"metric": metric, "limit": 500}))
        for member_id in ids[:: max(1, len(ids) // 10)]:
            for window in ("7d", "90d"):
                asked.append(("/members/{member_id}", f"/members/{member_id}", {"window": window}))
        for template, path, params in asked:
            response = client.get(path, params=params)
            assert response.status_code == 200, (path, params, response.text)
            operation = api_schema[f"/api/v1{template}"]["GET"]
            operation.validate_response(response)  # raises with the mismatch


def test_the_schema_covers_the_whole_api_and_is_served_as_json(server: Served) -> None:
    response = httpx.get(f"{server.address}/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    paths = response.json()["paths"]
    assert set(paths) == {
        "/api/v1/health",
        "/api/v1/jobs",
        "/api/v1/overview",
        "/api/v1/members",
        "/api/v1/members/{member_id}",
        "/api/v1/leaderboard",
        "/api/v1/activity",
        "/api/v1/roster",
        "/api/v1/inactive",
        "/api/v1/admin/jobs/{name}/run",
        "/api/v1/admin/members/{member_id}/opt-out",
        "/api/v1/admin/members/{member_id}/accounts",
    }
    # the pages are not part of the API
    assert not any(not p.startswith("/api/v1/") for p in paths)
