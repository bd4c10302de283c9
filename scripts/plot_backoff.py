"""Draw docs/retry-backoff.svg: the four backoff curves of notifier.core.retry.

Usage: python scripts/plot_backoff.py [OUTPUT]   (default docs/retry-backoff.svg)

Plain SVG written by hand, so the docs need nothing beyond the standard
library. The range matches the AWS SNS delivery-policy picture the Zaqar spec
refers to: minimum delay 5 s, maximum delay 260 s, 10 backoff retries.
"""

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from notifier.core.retry import BACKOFF_FUNCTIONS, backoff_delays  # noqa: E402

MINIMUM, MAXIMUM, COUNT = 5, 260, 10
WIDTH, HEIGHT = 640, 420
LEFT, RIGHT, TOP, BOTTOM = 70, 170, 40, 60
Y_STEP = 20
COLOURS = {
    "linear": "#1f77b4",
    "arithmetic": "#ff7f0e",
    "geometric": "#2ca02c",
    "exponential": "#d62728",
}


def to_x(retry):
    """Map a retry number (1..COUNT) to an SVG x coordinate."""
    return LEFT + (retry - 1) / (COUNT - 1) * (WIDTH - LEFT - RIGHT)


def to_y(delay):
    """Map a delay in seconds (0..y_top) to an SVG y coordinate."""
    return HEIGHT - BOTTOM - delay / y_top() * (HEIGHT - TOP - BOTTOM)


def y_top():
    """Return the top of the y axis: MAXIMUM rounded up to a tick."""
    return -(-MAXIMUM // Y_STEP) * Y_STEP


def draw_axes():
    """Yield the grid, ticks, tick labels and axis titles."""
    x0, x1, y0 = LEFT, WIDTH - RIGHT, HEIGHT - BOTTOM
    for delay in range(0, y_top() + 1, Y_STEP):
        y = to_y(delay)
        yield f'<line x1="{x0}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}" class="grid"/>'
        yield f'<text x="{x0 - 8}" y="{y + 4:.1f}" text-anchor="end">{delay}</text>'
    for retry in range(1, COUNT + 1):
        x = to_x(retry)
        yield f'<line x1="{x:.1f}" y1="{y0}" x2="{x:.1f}" y2="{y0 + 5}" class="axis"/>'
        yield f'<text x="{x:.1f}" y="{y0 + 20}" text-anchor="middle">{retry}</text>'
    yield f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" class="axis"/>'
    yield f'<line x1="{x0}" y1="{TOP}" x2="{x0}" y2="{y0}" class="axis"/>'
    yield (
        f'<text x="{(x0 + x1) / 2:.1f}" y="{HEIGHT - 15}" '
        'text-anchor="middle">Retry number in the backoff phase</text>'
    )
    yield (
        f'<text x="18" y="{(TOP + y0) / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 18 {(TOP + y0) / 2:.1f})">Delay (seconds)</text>'
    )


def draw_curve(function):
    """Yield one function's polyline and its point markers."""
    delays = backoff_delays(function, MINIMUM, MAXIMUM, COUNT)
    points = [(to_x(n), to_y(d)) for n, d in enumerate(delays, start=1)]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    colour = COLOURS[function]
    yield f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>'
    for x, y in points:
        yield f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>'


def draw_legend():
    """Yield a legend entry per function, right of the plot."""
    x = WIDTH - RIGHT + 20
    for row, function in enumerate(BACKOFF_FUNCTIONS):
        y = TOP + 20 + row * 24
        colour = COLOURS[function]
        yield (
            f'<line x1="{x}" y1="{y}" x2="{x + 24}" y2="{y}" stroke="{colour}" stroke-width="2"/>'
        )
        yield f'<circle cx="{x + 12}" cy="{y}" r="3" fill="{colour}"/>'
        yield f'<text x="{x + 32}" y="{y + 4}">{function}</text>'


def render():
    """Return the whole SVG document as a string."""
    title = (
        f"Backoff functions: minimum delay {MINIMUM} s, maximum delay {MAXIMUM} s, {COUNT} retries"
    )
    body = [*draw_axes()]
    for function in BACKOFF_FUNCTIONS:
        body.extend(draw_curve(function))
    body.extend(draw_legend())
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
            f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" '
            'font-family="sans-serif" font-size="12">',
            f"<title>{title}</title>",
            "<style>.grid{stroke:#e0e0e0}.axis{stroke:#333}</style>",
            f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
            f'<text x="{WIDTH / 2:.1f}" y="22" text-anchor="middle" font-size="14">{title}</text>',
            *body,
            "</svg>",
            "",
        ]
    )


def main(argv):
    """Write the SVG to argv[1] or docs/retry-backoff.svg."""
    output = pathlib.Path(argv[1]) if len(argv) > 1 else ROOT / "docs" / "retry-backoff.svg"
    output.write_text(render(), encoding="utf-8")
    print(f"wrote {output}")


if __name__ == "__main__":
    main(sys.argv)
