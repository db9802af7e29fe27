"""How model values read in a narrow table cell: sizes, ages, latencies, statuses.

Styled cells are ``(text, rich style)`` pairs: cheaper than ``rich.text.Text`` for the
thousands of cells drawn every second.
"""

from __future__ import annotations

Styled = tuple[str, str]


def size(count: int) -> str:
    """``512``, ``1.2K``, ``34K``, ``5.6M``: four characters at most, like ``ls -h``."""
    value = float(count)
    for unit in ("", "K", "M", "G"):
        if value < 1000:
            if not unit:
                return str(int(value))
            return f"{value:.1f}{unit}" if value < 10 else f"{value:.0f}{unit}"
        value /= 1024
    return f"{value:.0f}T"


def age(seconds: float) -> str:
    """``4s``, ``12m``, ``3h``, ``2d``: how long ago, at the precision a glance needs."""
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{int(seconds)}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m"
    if seconds < 86400:
        return f"{int(seconds // 3600)}h"
    return f"{int(seconds // 86400)}d"


def latency(milliseconds: float | None) -> str:
    if milliseconds is None:
        return "…"
    if milliseconds < 10:
        return f"{milliseconds:.1f}ms"
    if milliseconds < 10_000:
        return f"{milliseconds:.0f}ms"
    return f"{milliseconds / 1000:.0f}s"


def address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


STATUS_STYLES = {1: "dim", 2: "green", 3: "cyan", 4: "yellow", 5: "bold red"}


def status(code: int | None) -> Styled:
    if code is None:
        return ("-", "dim")
    return (str(code), STATUS_STYLES.get(code // 100, ""))


def grpc_status(name: str) -> Styled:
    """A gRPC call's status name, green when ``OK``, an error in red otherwise."""
    return (name, STATUS_STYLES[2] if name == "OK" else STATUS_STYLES[5])


STATE_STYLES = {"open": "green", "closed": "dim", "reset": "red"}


def state(name: str) -> Styled:
    return (name, STATE_STYLES.get(name, ""))


PROTOCOL_NAMES = {"http": "h1", "unknown": ""}
"""How the connections table names a protocol (others by their own name: h2, grpc, ws…)."""
PROTOCOL_STYLES = {"h2": "cyan", "grpc": "magenta", "ws": "yellow", "tls": "dim", "tcp": "dim"}


def protocol(name: str) -> Styled:
    return (PROTOCOL_NAMES.get(name, name), PROTOCOL_STYLES.get(name, ""))


METHOD_STYLES = {
    "GET": "cyan",
    "POST": "magenta",
    "PUT": "yellow",
    "PATCH": "yellow",
    "DELETE": "red",
}


def method(name: str) -> Styled:
    return (name, METHOD_STYLES.get(name, "bold"))


SPARK_BARS = "▁▂▃▄▅▆▇█"


def sparkline(counts: list[int]) -> str:
    """One character per count, scaled to the largest; a blank where there was none."""
    top = max(counts, default=0)
    if not top:
        return " " * len(counts)
    last = len(SPARK_BARS) - 1
    return "".join(
        " " if not count else SPARK_BARS[min(last, (count * last + top - 1) // top)]
        for count in counts
    )
