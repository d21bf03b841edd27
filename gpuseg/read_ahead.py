"""Work computed ahead of the caller in threads, handed over in order.

:func:`read_ahead` runs a generator in a thread, so that decoding overlaps the caller's compute.
Memory stays bounded: at most ``depth`` items wait in the queue. Closing the consumer's generator
(``break``, an exception, garbage collection) stops the thread once the item it is making is done
(a thread waiting on a full queue notices within ``_POLL_S``), joins it and drops what it made.

:func:`map_ahead` applies a function to items on several threads at once (numpy and pyarrow
release the GIL in their loops) and yields the results in the items' order, with at most
``depth`` items taken from the iterable and not yet handed over.
"""

from __future__ import annotations

import collections
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

# How often a blocked reader thread checks whether the consumer has gone.
_POLL_S = 0.05


class _Failure:
    """An exception of the reader thread, on its way to the consumer."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_DONE = object()


def read_ahead(
    produce: Callable[[], Iterator[Any]], depth: int, name: str = "gpuseg-reader"
) -> Iterator[Any]:
    """Yield the items of ``produce()``, computed up to ``depth`` items ahead in a thread.

    Errors of the thread are raised here; closing this generator stops and joins the thread
    (named ``name``).
    """
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            if _put_within(items, item, _POLL_S):
                return True
        return False

    def run() -> None:
        iterator = produce()
        try:
            for item in iterator:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:
            put(_Failure(exc))
        finally:
            iterator.close()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        # Free the decoded blocks now; only this thread takes from the queue, so no race.
        while not items.empty():
            items.get_nowait()
        thread.join()


def _put_within(items: queue.Queue, item: Any, timeout: float) -> bool:
    """Put ``item`` unless the queue stays full for ``timeout`` seconds."""
    try:
        items.put(item, timeout=timeout)
    except queue.Full:
        return False
    return True


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS has one), at least 1."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, usable or 1)


def default_threads() -> int:
    """Threads for :func:`map_ahead`: the usable cores, at most 4."""
    return min(4, usable_cores())


def map_ahead(
    function: Callable[[Any], Any],
    items: Iterable[Any],
    threads: int | None = None,
    depth: int | None = None,
) -> Iterator[Any]:
    """Yield ``function(item)`` for every item, in order, computed on ``threads`` threads.

    At most ``depth`` (default ``2 * threads``) items are taken from ``items`` ahead of the one
    being handed over, so memory stays bounded. The first exception, in item order, is raised
    here; closing the generator cancels what has not started and waits for what has.

    Examples
    --------
    >>> list(map_ahead(lambda x: x * x, range(5), threads=2))
    [0, 1, 4, 9, 16]
    """
    threads = default_threads() if threads is None else threads
    depth = 2 * threads if depth is None else depth
    if threads <= 1:
        yield from map(function, items)
        return
    pending: collections.deque[Future] = collections.deque()
    with ThreadPoolExecutor(threads, thread_name_prefix="gpuseg-map") as pool:
        try:
            for item in items:
                pending.append(pool.submit(function, item))
                if len(pending) >= depth:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
