"""The weekly chart: messages and XP per day, and the week's top members, as one PNG.

Drawn on a bare ``matplotlib.figure.Figure`` with the Agg canvas: no pyplot, so no global
figure registry, no GUI backend, and safe to call from a worker thread while the scheduler
runs. The same input gives the same bytes (no timestamps in the PNG's metadata).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from clanpulse.analytics.clan import Ranked
from clanpulse.analytics.daily import DayTotals

WIDTH, HEIGHT, DPI = 8.0, 6.0, 100  # 800 x 600 pixels: sharp in Discord, a few dozen KB
MESSAGES_COLOR = "#5865F2"
XP_COLOR = "#3BA55D"
TOP_COLOR = "#FAA61A"
NAME_MAX = 24  # a label, not data: the embed lists full names


def _label(name: str) -> str:
    # '$' starts mathtext in matplotlib: a name like "$$$ Rich" must not be parsed as math
    short = name if len(name) <= NAME_MAX else name[: NAME_MAX - 1] + "…"
    return short.replace("$", r"\$")


def _compact(value: float, _position: object = None) -> str:
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.0f}"


def weekly_chart_png(
    daily: Sequence[DayTotals],
    top_members: Sequence[Ranked],
    *,
    top_title: str = "Top chatters (messages, 7 days)",
) -> bytes:
    """A PNG of messages per day, XP gained per day, and ``top_members`` as bars."""
    figure = Figure(figsize=(WIDTH, HEIGHT), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(2, 2)
    days = [f"{d.day:%a}\n{d.day:%d %b}" for d in daily]
    positions = list(range(len(daily)))

    chat = figure.add_subplot(grid[0, 0])
    chat.bar(positions, [d.messages for d in daily], color=MESSAGES_COLOR)
    chat.set_title("Messages per day")
    chat.yaxis.set_major_formatter(FuncFormatter(_compact))

    xp = figure.add_subplot(grid[0, 1])
    xp.bar(positions, [d.xp or 0 for d in daily], color=XP_COLOR)
    xp.set_title("XP gained per day")
    xp.yaxis.set_major_formatter(FuncFormatter(_compact))

    for axes in (chat, xp):
        axes.set_xticks(positions, days, fontsize=8)
        axes.grid(axis="y", alpha=0.3)
        axes.set_axisbelow(True)

    top = figure.add_subplot(grid[1, :])
    ranked = list(top_members)[::-1]  # barh draws bottom-up: the best goes on top
    bars = top.barh(range(len(ranked)), [r.value for r in ranked], color=TOP_COLOR)
    top.bar_label(bars, [f"{r.value:,}" for r in ranked], padding=3, fontsize=8)
    top.set_yticks(range(len(ranked)), [_label(r.name) for r in ranked])
    top.set_title(top_title)
    top.xaxis.set_major_formatter(FuncFormatter(_compact))
    top.grid(axis="x", alpha=0.3)
    top.set_axisbelow(True)
    if not ranked:
        top.text(
            0.5, 0.5, "no activity this week", ha="center", va="center", transform=top.transAxes
        )
        top.set_yticks([])

    buffer = io.BytesIO()
    # no "Software" or date chunks: identical input gives identical bytes
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
