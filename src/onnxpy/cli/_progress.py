"""Progress bars on long steps, shown only on a terminal (quiet in pipes and tests).

rich (extra ``tools``) draws them; without rich, or when stderr is not a terminal, the bar is a
no-op and nothing is printed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["progress"]


@contextmanager
def progress(description: str) -> Iterator[Callable[[int, int], None]]:
    """``with progress("comparing") as update: ... update(done, total)``."""
    if not sys.stderr.isatty():
        yield lambda done, total: None
        return
    try:
        from rich.console import Console
        from rich.progress import Progress
    except ImportError:
        yield lambda done, total: None
        return
    # on stderr, the stream checked above: stdout may be a pipe carrying the command's results
    with Progress(transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update
