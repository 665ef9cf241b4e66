"""Server-rendered bar charts (SVG, no script): the geometry of a panel's series, drawn by
``templates/chart.html`` with a text alternative (the same numbers as a table)."""

from __future__ import annotations

from dataclasses import dataclass

WIDTH, HEIGHT, TOP, BOTTOM, LEFT = 720, 220, 16, 28, 44


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    x: float
    y: float
    width: float
    height: float
    show_label: bool


@dataclass(frozen=True)
class Chart:
    title: str
    unit: str
    bars: list[Bar]
    top: int  # the value of the highest gridline
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    base: int = HEIGHT - BOTTOM

    @property
    def total(self) -> int:
        return sum(b.value for b in self.bars)


def _nice(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten at least ``value`` (at least 1)."""
    step = 1
    while True:
        for m in (1, 2, 5):
            if m * step >= value:
                return m * step
        step *= 10


def bar_chart(title: str, series: list[tuple[str, int]], unit: str = "") -> Chart:
    top = _nice(max((v for _, v in series), default=0))
    n = max(len(series), 1)
    slot = (WIDTH - LEFT - 8) / n
    every = max(1, round(n / 14))  # at most ~14 labels under the bars
    usable = HEIGHT - BOTTOM - TOP
    bars = []
    for i, (label, value) in enumerate(series):
        h = usable * max(value, 0) / top
        bars.append(
            Bar(
                label=label,
                value=value,
                x=round(LEFT + i * slot + slot * 0.15, 1),
                y=round(HEIGHT - BOTTOM - h, 1),
                width=round(slot * 0.7, 1),
                height=round(h, 1),
                show_label=i % every == 0,
            )
        )
    return Chart(title=title, unit=unit, bars=bars, top=top)
