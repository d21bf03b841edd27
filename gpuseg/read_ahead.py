"""A generator computed ahead in a thread: decoding overlaps the caller's compute.

Memory stays bounded: at most ``depth`` items wait in the queue. Closing the consumer's generator
(``break``, an exception, garbage collection) stops the thread once the item it is making is done
(a thread waiting on a full queue notices within ``_POLL_S``), joins it and drops what it made.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
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
