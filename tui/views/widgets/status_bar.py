"""The one-line status bar: where the traffic comes from, how healthy the stream is, and what
the view is doing to it (filter, noise, paused or following)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rich.text import Text
from textual.widgets import Static

from tui.model.terminal_text import one_line

ViewMode = Literal["following", "browsing", "paused"]


@dataclass(frozen=True, slots=True)
class StatusLine:
    target: str
    agents_live: int = 0
    agents_total: int = 0
    pods_live: int = 0
    pods_total: int = 0
    """Pods tapped by node agents (none in local sessions or with an agent per pod)."""
    reconnecting: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    """Sources that failed or are gone, each with its sentence."""
    events_per_second: float = 0.0
    gaps: int = 0
    kernel_drops: int = 0
    lost_events: int = 0
    losses: str = ""
    """Every loss with its unit (tui.model.loss.LossTally.short), when there was any."""
    dropped_connections: int = 0
    dropped_exchanges: int = 0
    shown_connections: int = 0
    total_connections: int = 0
    filter_text: str = ""
    inverted: bool = False
    hide_noise: bool = False
    mode: ViewMode = "following"
    stream_ended: bool = False
    left_view: str = "connections"
    """What the left pane lists: ``connections`` or ``requests``."""
    shown_requests: int = 0

    def render(self) -> Text:
        parts: list[Text] = [Text(f" {self.target} ", style="bold reverse")]
        parts.append(_count("agents", self.agents_live, self.agents_total))
        if self.pods_total:
            pods = _count("pods", self.pods_live, self.pods_total)
            parts[-1] = Text(" · ").join([parts[-1], pods])
        if self.reconnecting:
            parts.append(Text(f"reconnecting: {', '.join(self.reconnecting)}", style="yellow"))
        for sentence in self.failed:
            parts.append(Text(sentence, style="bold red"))
        if self.stream_ended:
            parts.append(Text("end of stream", style="cyan"))
        else:
            parts.append(Text(f"{self.events_per_second:,.0f} ev/s"))
        if self.losses:
            parts.append(Text(self.losses, style="bold yellow"))
        else:
            losses = self.gaps + self.kernel_drops + self.lost_events
            parts.append(
                Text(
                    f"gaps {self.gaps} drops {self.kernel_drops + self.lost_events}",
                    style="yellow" if losses else "dim",
                )
            )
        if self.dropped_connections or self.dropped_exchanges:
            parts.append(
                Text(
                    f"evicted {self.dropped_connections} conns {self.dropped_exchanges} reqs",
                    style="yellow",
                )
            )
        if self.left_view == "requests":
            parts.append(Text(f"requests view: {self.shown_requests} reqs", style="bold"))
        else:
            parts.append(Text(f"{self.shown_connections}/{self.total_connections} conns"))
        if self.filter_text:
            prefix = "filter !(" if self.inverted else "filter "
            suffix = ")" if self.inverted else ""
            parts.append(Text(f"{prefix}{self.filter_text}{suffix}", style="bold magenta"))
        if self.hide_noise:
            parts.append(Text("noise hidden", style="magenta"))
        parts.append(MODE_TEXT[self.mode])
        line = Text("  ").join(parts)
        # Sentences and names come from agents and files: never let them drive the terminal.
        return line if one_line(line.plain) == line.plain else Text(one_line(line.plain))


def _count(what: str, live: int, total: int) -> Text:
    text = Text(f"{what} {live}/{total}")
    if total and live == total:
        text.stylize("green")
    elif total:
        text.stylize("yellow")
    return text


MODE_TEXT: dict[ViewMode, Text] = {
    "following": Text("● following", style="bold green"),
    "browsing": Text("○ browsing", style="bold cyan"),
    "paused": Text("❚❚ paused", style="bold yellow"),
}


class StatusBar(Static):
    DEFAULT_CSS = """
    StatusBar {
        height: 1;
        background: $panel;
        color: $text;
        padding: 0 0;
    }
    """

    _shown: StatusLine | None = None

    def show(self, line: StatusLine) -> None:
        if line != self._shown:
            self._shown = line
            # One line, always: no layout pass needed.
            self.update(line.render(), layout=False)
