"""Find through 100,000 exchanges, without the app: CPU time (not wall time: on a busy machine
the app's figures in bench_views.py swing with the load, these do not).

    .venv/bin/python bench/bench_find.py [--exchanges 100000] [--runs 5]

Medians of --runs, in CPU milliseconds, on bench_views.py's traffic (the text in the 11th
exchange only, so that ``n`` from the newest looks through every one):

- the reference: listing the exchanges in the requests view's order (what ``n`` does first);
- making the texts find looks through (masked, as shown), as done while the find text is
  typed;
- ``n`` from the newest to the 11th with those texts made (every ``n`` after the first);
- the same with none made (a find text pasted and ``n`` pressed at once), in slices of 1,000.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_views import NEEDLE, traffic
from tui.model.find import FindTexts, Needle, ScanAround, make_needle
from tui.model.flows import Exchange
from tui.model.store import Store


def cpu_ms(work: Callable[[], object]) -> float:
    began = time.process_time()
    work()
    return (time.process_time() - began) * 1000


def warm(texts: FindTexts, ordered: list[Exchange]) -> None:
    position = 0
    while position < len(ordered):
        position = texts.warm(ordered, position, 500)


def scan(ordered: list[Exchange], needle: Needle, texts: FindTexts, size: int) -> None:
    looking = ScanAround(ordered, 0, needle, True, texts)
    while not looking.step(size):
        pass
    assert looking.found is not None
    assert NEEDLE.encode() in ordered[looking.found].response.body  # type: ignore[union-attr]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exchanges", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    store = Store(max_exchanges=args.exchanges)
    updates = traffic(args.exchanges, b'{"order": 1}')
    for start in range(0, len(updates), 5000):
        store.apply(updates[start : start + 5000])
    needle = make_needle(NEEDLE)
    assert needle is not None
    ordered = store.visible_exchanges_in_order()[::-1]
    figures: dict[str, list[float]] = {}
    for _ in range(args.runs):
        figures.setdefault("listing them (reference)", []).append(
            cpu_ms(lambda: store.visible_exchanges_in_order()[::-1])
        )
        texts = FindTexts()
        figures.setdefault("texts made, while typing", []).append(
            cpu_ms(lambda: warm(texts, ordered))  # noqa: B023 - run at once
        )
        figures.setdefault("n, texts made", []).append(
            cpu_ms(lambda: scan(ordered, needle, texts, 20_000))  # noqa: B023 - run at once
        )
        figures.setdefault("n, no text made yet", []).append(
            cpu_ms(lambda: scan(ordered, needle, FindTexts(), 1000))
        )
    reference = statistics.median(figures["listing them (reference)"])
    print(f"find through {args.exchanges:,} exchanges, CPU ms (median of {args.runs}):")
    for name, values in figures.items():
        median = statistics.median(values)
        print(f"  {name:<28} {median:8.1f} ms  x{median / reference:6.1f}")


if __name__ == "__main__":
    main()
