"""What the secrets policy costs: HAR entries masked against revealed, free text per MB.

    .venv/bin/python bench/bench_masking.py [--runs 5]

* HAR: ``har_entry`` over the app tests' shop traffic (JSON bodies, Authorization and Cookie
  headers, query strings), masked and revealed (the reference) interleaved, median CPU time
  per entry of --runs.
* free text: ``mask_text`` (the raw view, bodies of no known type, decoding errors) on 1 MB of
  prose, of ``name=value`` pairs, of header lines and of URLs, median CPU seconds.
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
from tui.model.secrets import mask_text
from tui.model.store import Store
from tui.output.har import har_entry


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    har(args.runs)
    free_text(args.runs)


if __name__ == "__main__":
    main()
