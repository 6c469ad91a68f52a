"""Work spread over forked processes, behind two small interfaces.

- `map_chunks(fn, items, ...)`: `fn` applied to consecutive chunks of `items`, in two forked worker
  processes where that pays, in this process otherwise; results come back in chunk order. `compile`
  renders, signs and stores its servers' files through it; `diff` renders a side's servers through it
  (compiler.work_digests).
- `Partner`: one forked process that runs a function beside this one and talks to it over a pipe —
  `sfbgen diff` plans and renders its OLD side there while this process does the NEW one, the two
  exchanging their fingerprints half-way (a conversation, not a map).

Both fork (a forked process inherits the plan, the renderer and the function as they are: nothing is
pickled but what a chunk returns), and fall back to this process where there is no `fork` or fewer
than two usable cores.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Self, TypeVar

from .resources import usable_cores

T = TypeVar("T")
R = TypeVar("R")

# What forked workers run, by job number: set before the pool forks them, removed when the map ends.
# It lives here only, for the time of one map_chunks call.
_jobs: dict[int, tuple[Callable, Sequence]] = {}
_job_numbers = itertools.count(1)


def can_fork() -> bool:
    """Two forked processes would run at the same time here: two usable cores and the fork start method."""
    import multiprocessing

    return usable_cores() >= 2 and "fork" in multiprocessing.get_all_start_methods()


def _run_chunk(job: int, start: int, end: int):
    fn, items = _jobs[job]
    return fn(items[start:end])


def map_chunks(
    fn: Callable[[Sequence[T]], R],
    items: Sequence[T],
    *,
    chunk_size: int,
    min_items: int = 0,
    workers: int = 2,
    window: int | None = None,
    meanwhile: Callable[[], None] | None = None,
) -> Iterator[R]:
    """`fn(chunk)` for each consecutive chunk of `items` (at most `chunk_size` long), in order.

    With at least `min_items` items (and `can_fork()`), the chunks run in `workers` forked processes;
    `window` bounds how many chunks are in flight (None: all of them — for an `fn` that returns little,
    so that memory stays flat however many items there are otherwise), and this process runs
    `meanwhile` once the first chunks are under way. Otherwise everything runs here, `meanwhile` first.
    An exception in `fn` comes out of the iteration, here as in a worker. Should this process be killed,
    a worker finishes at most the chunk in hand (sending its result back fails, and it exits)."""
    bounds = [(i, min(i + chunk_size, len(items))) for i in range(0, len(items), chunk_size)]
    if len(items) < min_items or not can_fork():
        if meanwhile is not None:
            meanwhile()
        for start, end in bounds:
            yield fn(items[start:end])
        return
    import multiprocessing

    job = next(_job_numbers)
    _jobs[job] = (fn, items)
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            width = len(bounds) if window is None else window
            pending = deque(pool.apply_async(_run_chunk, (job, *b)) for b in bounds[:width])
            if meanwhile is not None:
                meanwhile()
            for b in bounds[width:]:
                result = pending.popleft().get()
                pending.append(pool.apply_async(_run_chunk, (job, *b)))
                yield result
            while pending:
                yield pending.popleft().get()
    finally:
        _jobs.pop(job, None)


class Partner:
    """`target(pipe, *args)` run in a forked process beside this one, with one end of a pipe; this
    process holds the other (`send`, `receive`). Use as a context manager: on leaving, the pipe is
    closed and the process waited for (at most `timeout` seconds), then killed if it still runs."""

    def __init__(self, target: Callable[..., None], *args: Any, timeout: float = 5):
        import multiprocessing

        context = multiprocessing.get_context("fork")
        self._pipe, theirs = context.Pipe()
        self._process = context.Process(target=target, args=(theirs, *args), daemon=True)
        self._process.start()
        theirs.close()
        self._timeout = timeout

    def send(self, value: Any) -> None:
        self._pipe.send(value)

    def receive(self) -> Any:
        try:
            return self._pipe.recv()
        except EOFError:
            raise RuntimeError("the partner process ended without an answer") from None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._pipe.close()
        self._process.join(timeout=self._timeout)
        if self._process.is_alive():
            self._process.kill()
