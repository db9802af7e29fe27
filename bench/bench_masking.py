"""What the secrets policy costs: HAR entries masked against revealed, free text per MB.

    .venv/bin/python bench/bench_masking.py [--runs 5]

* HAR: ``har_entry`` over the app tests' shop traffic (JSON bodies, Authorization and Cookie
  headers, query strings), masked and revealed (the reference) interleaved, median CPU time
  per entry of --runs.
* free text: ``mask_text`` (the raw view, bodies of no known type, decoding errors) on 1 MB of
  prose, of ``name=value`` pairs, of header lines and of URLs, median CPU seconds.
* a 10 MB body of JSON lines, each with an ``access_token``: its first screen in the detail
  pane (the body rendered for the pane, its first 45 rows made), revealed (the reference),
  masked whole as before, and masked a chunk at a time (``MaskedText``); then the rest of it
  masked chunk by chunk against masking it whole (median CPU ms; at most 3 runs of the slow
  ones).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.ui.fakes import shop_updates
from tui.model.bodies import RenderedBody, render_body
from tui.model.masked_text import MaskedText
from tui.model.secrets import mask_body, mask_text
from tui.model.store import Store
from tui.output.har import har_entry
from tui.views.widgets.block_view import BodyBlock


def cpu(work: Callable[[], object]) -> float:
    began = time.process_time()
    work()
    return time.process_time() - began


def har(runs: int) -> None:
    store = Store()
    store.apply(shop_updates())
    pairs = [(conn, ex) for conn in store.connections.values() for ex in conn.exchanges]
    rounds = 300

    def entries(reveal: bool) -> None:
        for _ in range(rounds):
            for conn, ex in pairs:
                har_entry(ex, conn, reveal=reveal)

    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(runs):
        for reveal in (True, False):
            times[reveal].append(cpu(functools.partial(entries, reveal)) / (rounds * len(pairs)))
    revealed, masked = (statistics.median(times[r]) * 1e6 for r in (True, False))
    print(
        f"HAR entry: revealed (reference) {revealed:.1f} µs, masked {masked:.1f} µs, "
        f"ratio {masked / revealed:.2f}x"
    )


def free_text(runs: int) -> None:
    texts = {
        "prose": "lorem ipsum dolor sit amet, " * 36_000,
        "name=value pairs": "x=1&" * 250_000,
        "header lines": "X-Request-Id: abc\n" * 55_000,
        "URLs": "see http://a.local/p?page=1 " * 36_000,
    }
    print("mask_text, CPU seconds per MB (median):")
    for name, text in texts.items():
        seconds = statistics.median(cpu(functools.partial(mask_text, text)) for _ in range(runs))
        print(f"  {name:<18} {seconds / (len(text) / 1e6):.2f} s")


def big_body(runs: int) -> None:
    line = '{"order": %d, "access_token": "tok-%d", "note": "%s"}\n'
    body = "".join(line % (n, n, "x" * 40) for n in range(100_000)).encode()
    kind = "application/x-ndjson"
    width, screen = 150, 45

    def first_screen(rendered: RenderedBody) -> None:
        for row in range(min(screen, len(rendered.lines))):
            rendered.lines[row]

    def revealed() -> None:
        first_screen(BodyBlock(body, kind, "auto").render(width))

    def masked_whole() -> None:
        first_screen(render_body(mask_body(body, kind), kind, "auto", width))

    def masked_lazily() -> None:
        first_screen(BodyBlock(body, kind, "auto", masked=True).render(width))

    def rest_lazily() -> None:
        lines = BodyBlock(body, kind, "auto", masked=True).render(width).lines
        assert isinstance(lines, MaskedText)
        while not lines.advance():
            pass

    slow = min(runs, 3)
    figures = {
        "revealed (reference)": [cpu(revealed) for _ in range(runs)],
        "masked whole (before)": [cpu(masked_whole) for _ in range(slow)],
        "masked a chunk at a time": [cpu(masked_lazily) for _ in range(runs)],
    }
    print(f"a {len(body) / 1e6:.0f} MB body of JSON lines with tokens, first screen (median):")
    reference = statistics.median(figures["revealed (reference)"])
    for name, times in figures.items():
        median = statistics.median(times)
        print(f"  {name:<26} {median * 1000:8.1f} ms  x{median / reference:6.1f}")
    whole = statistics.median(figures["masked whole (before)"])
    rest = statistics.median(cpu(rest_lazily) for _ in range(slow))
    print(
        f"  all of it, chunk by chunk {rest * 1000:8.1f} ms  "
        f"(x{rest / whole:.2f} masking it whole, in the background)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    har(args.runs)
    free_text(args.runs)
    big_body(args.runs)


if __name__ == "__main__":
    main()
