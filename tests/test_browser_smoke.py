"""The browser fixtures work: a real headless Chromium loads a page from a local HTTP
server, runs its external script, draws on a canvas, reports JS errors, and takes
screenshots. Also checks that the vendored Chart.js draws a chart with no network."""

from __future__ import annotations

import functools
import shutil
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.browser_support import (  # noqa: F401  (fixtures)
    BrowserPage,
    browser_page,
    chromium_path,
    screenshot,
)

VENDOR_DIR = Path(__file__).resolve().parent.parent / "src/clanpulse/web/static/vendor"

INDEX_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>smoke</title></head>
<body>
<h1>Browser smoke test</h1>
<canvas id="c" width="200" height="100"></canvas>
<script src="draw.js"></script>
</body></html>
"""

DRAW_JS = """
const ctx = document.getElementById("c").getContext("2d");
ctx.fillStyle = "rgb(200, 30, 30)";
ctx.fillRect(20, 20, 160, 60);
document.body.dataset.drawn = "yes";
"""

BROKEN_HTML = """<!doctype html>
<html><head><meta charset="utf-8"></head>
<body>
<script src="missing.js"></script>
<script>undefinedFunction();</script>
</body></html>
"""

CHART_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>chart</title></head>
<body>
<div style="width: 600px; height: 300px"><canvas id="chart"></canvas></div>
<script src="chart.umd.min.js"></script>
<script src="chart-page.js"></script>
</body></html>
"""

CHART_JS = """
new Chart(document.getElementById("chart"), {
  type: "bar",
  data: {
    labels: ["Mon", "Tue", "Wed", "Thu", "Fri"],
    datasets: [{label: "messages", data: [12, 19, 3, 5, 8],
                backgroundColor: "rgb(40, 110, 200)"}],
  },
  options: {animation: false, responsive: true, maintainAspectRatio: false},
});
document.body.dataset.drawn = "yes";
"""

# True when any pixel of the canvas is not fully transparent.
CANVAS_HAS_PIXELS = """(id) => {
  const c = document.getElementById(id);
  const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) return true;
  return false;
}"""


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A static HTTP server on 127.0.0.1 (free port) serving a temp dir: (base URL, dir)."""
    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_text(INDEX_HTML)
    (root / "draw.js").write_text(DRAW_JS)
    (root / "broken.html").write_text(BROKEN_HTML)
    (root / "chart.html").write_text(CHART_HTML)
    (root / "chart-page.js").write_text(CHART_JS)
    shutil.copy(VENDOR_DIR / "chart.umd.min.js", root / "chart.umd.min.js")
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_page_loads_and_draws_on_canvas(
    browser_page: BrowserPage,  # noqa: F811
    site: tuple[str, Path],
) -> None:
    base, _ = site
    page = browser_page.page
    response = page.goto(f"{base}/index.html")
    assert response is not None and response.ok
    assert page.title() == "smoke"
    page.wait_for_selector("body[data-drawn=yes]")
    assert page.evaluate(CANVAS_HAS_PIXELS, "c")
    # The fill colour is where the script put it, and the corner is still empty.
    rgba = page.evaluate(
        "() => Array.from(document.getElementById('c').getContext('2d')"
        ".getImageData(100, 50, 1, 1).data)"
    )
    assert rgba == [200, 30, 30, 255]
    corner = page.evaluate(
        "() => document.getElementById('c').getContext('2d').getImageData(0, 0, 1, 1).data[3]"
    )
    assert corner == 0

    path = screenshot(page, "browser-smoke")
    assert path.name == "browser-smoke.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    browser_page.assert_no_errors()


def test_js_errors_are_recorded(
    browser_page: BrowserPage,  # noqa: F811
    site: tuple[str, Path],
) -> None:
    base, _ = site
    browser_page.page.goto(f"{base}/broken.html")
    browser_page.page.wait_for_load_state("load")
    errors = "\n".join(browser_page.errors)
    assert "undefinedFunction" in errors  # the uncaught ReferenceError
    assert "404" in errors  # the missing script
    with pytest.raises(AssertionError, match="JavaScript errors"):
        browser_page.assert_no_errors()


def test_vendored_chartjs_draws_offline(
    browser_page: BrowserPage,  # noqa: F811
    site: tuple[str, Path],
) -> None:
    base, _ = site
    page = browser_page.page
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(f"{base}/chart.html")
    page.wait_for_selector("body[data-drawn=yes]")
    assert page.evaluate("() => Chart.version").startswith("4.")
    assert page.evaluate(CANVAS_HAS_PIXELS, "chart")
    # Everything came from the local server: no CDN, no source map.
    assert all(url.startswith(base) for url in requested), requested
    assert not any(url.endswith(".map") for url in requested)
    screenshot(page, "browser-smoke-chartjs")
    browser_page.assert_no_errors()


def test_screenshot_name_must_be_a_plain_file_name() -> None:
    with pytest.raises(ValueError):
        screenshot(None, "../escape")  # type: ignore[arg-type]
