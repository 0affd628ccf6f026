"""The one way tests wait: poll a real condition until it holds or a deadline passes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T], timeout: float, what: str, *, interval: float = 0.05
) -> T:
    """Return the first truthy value of ``condition()``; fail naming ``what`` after ``timeout`` s.

    ``condition`` is always called at least once more at the deadline, so a slow machine that
    reaches the state just in time still passes.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)
