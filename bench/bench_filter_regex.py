"""What a filter's regexes cost per exchange: RE2 on bounded text against Python's re.

    .venv/bin/python bench/bench_filter_regex.py [--runs 5] [--exchanges 20000]

Two figures, each the median CPU time of --runs, contenders interleaved round by round:

* hostile: ``~p '^/(\\w+/?)+$'`` on one path ``/aaa…a!`` that does not match. Python's re
  backtracks exponentially in the length (it is run only up to lengths that stay under a few
  seconds); podtap's filter (RE2) is shown at the same lengths and at 5,000 characters.
* ordinary: ``~p ^/api/users & ~h "x-user-id: ^alice$"`` over --exchanges decoded exchanges,
  podtap's filter against the same predicate written with Python's re (the reference): the
  price of RE2's per-call overhead on the everyday case. Paths and header values repeat, as
  in real traffic (97 paths, 4 users), and podtap's filter remembers recent results.
"""

from __future__ import annotations

import argparse
import functools
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tui.model.filters import parse_filter
from tui.model.flows import Connection, Exchange, Request

HOSTILE = r"^/(\w+/?)+$"


def connection() -> Connection:
    return Connection(
        key=("local", 1),
        source="local",
        conn=1,
        client="10.0.0.1",
        client_port=40000,
        server="10.0.0.2",
        server_port=8080,
        opened=0.0,
    )


def exchange(target: str, user: str = "alice") -> Exchange:
    request = Request(
        method="GET",
        target=target,
        path=target.split("?")[0],
        headers=[("Host", "shop"), ("x-user-id", user), ("Accept", "*/*")],
    )
    return Exchange(key=("local", 1), index=0, request=request)


def cpu(work: Callable[[], object]) -> float:
    began = time.process_time()
    work()
    return time.process_time() - began


def median_of(runs: int, contenders: dict[str, Callable[[int], object]]) -> dict[str, float]:
    """Each contender is given the run's number (to vary its input, see hostile)."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for run in range(runs):
        for name, work in contenders.items():
            times[name].append(cpu(functools.partial(work, run)))
    return {name: statistics.median(values) for name, values in times.items()}


def hostile(runs: int) -> None:
    conn = connection()
    podtap = parse_filter(f"~p '{HOSTILE}'")
    python = re.compile(HOSTILE)
    print("hostile: ~p '^/(\\w+/?)+$' on /a…a! (one exchange, median CPU time)")
    print(f"  {'length':>6}  {'Python re':>12}  {'podtap (RE2)':>12}  {'ratio':>8}")
    for length in (16, 18, 20, 22):
        # A path of its own per run and per call: the filter remembers the texts it has seen.
        def path(run: int, call: int = 0, length: int = length) -> str:
            return "/" + "a" * length + f"!{run}.{call}"

        calls = [[exchange(path(run, call)) for call in range(100)] for run in range(runs)]

        def with_re(run: int, path: Callable[[int], str] = path) -> object:
            return python.search(path(run))

        def with_podtap(run: int, calls: list[list[Exchange]] = calls) -> object:
            return [podtap.evaluate(conn, ex) for ex in calls[run]]

        figures = median_of(runs, {"re": with_re, "podtap": with_podtap})
        per_call = figures["podtap"] / 100
        ratio = figures["re"] / max(per_call, 1e-9)
        print(
            f"  {length:>6}  {figures['re'] * 1000:>10.1f}ms  "
            f"{per_call * 1e6:>10.1f}µs  {ratio:>7.0f}x"
        )
    long_path = exchange("/" + "a" * 5000 + "!")  # past the remembered length: searched each time
    many = median_of(
        runs, {"podtap": lambda _run: [podtap.evaluate(conn, long_path) for _ in range(100)]}
    )
    print(f"  {5000:>6}  {'(hours)':>12}  {many['podtap'] / 100 * 1e6:>10.1f}µs")


def ordinary(runs: int, count: int) -> None:
    conn = connection()
    users = ("alice", "bob", "carol", "dave")
    exchanges = [exchange(f"/api/users/{i % 97}?page={i % 7}", users[i % 4]) for i in range(count)]
    podtap = parse_filter('~p ^/api/users & ~h "x-user-id: ^alice$"')
    path = re.compile("^/api/users", re.IGNORECASE)
    name, value = re.compile("x-user-id", re.IGNORECASE), re.compile("^alice$")

    def python(ex: Exchange) -> bool:
        if path.search(ex.request.target) is None:
            return False
        return any(name.fullmatch(k) and value.search(v) for k, v in ex.request.headers)

    figures = median_of(
        runs,
        {
            "re": lambda _run: sum(python(ex) for ex in exchanges),
            "podtap": lambda _run: sum(podtap.evaluate(conn, ex) for ex in exchanges),
        },
    )
    assert sum(python(ex) for ex in exchanges) == sum(podtap.evaluate(conn, ex) for ex in exchanges)
    per = {k: v / count * 1e6 for k, v in figures.items()}
    print(f'ordinary: ~p ^/api/users & ~h "x-user-id: ^alice$" over {count:,} exchanges')
    print(
        f"  Python re (reference) {per['re']:.2f} µs/exchange; podtap (RE2) "
        f"{per['podtap']:.2f} µs/exchange; ratio {per['podtap'] / per['re']:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--exchanges", type=int, default=20_000)
    args = parser.parse_args()
    hostile(args.runs)
    ordinary(args.runs, args.exchanges)


if __name__ == "__main__":
    main()
