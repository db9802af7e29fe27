"""msgspec, or on a stock Python image where it is missing, agent/msgspec_subset.py.

Type checkers see msgspec itself: the subset follows its interface for what the agent uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import msgspec as msgspec
else:
    try:
        import msgspec
    except ImportError:  # no compiled extensions here: the agent still runs, more slowly
        from agent import msgspec_subset as msgspec

__all__ = ["msgspec"]
