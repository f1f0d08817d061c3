"""Imported at start-up by the processes the clock-skew tests run under libfaketime (this
folder leads their PYTHONPATH).

They run with FAKETIME_DONT_FAKE_MONOTONIC, because a shifted monotonic clock hangs
timed waits. But libfaketime 0.9.10 then fails ``clock_nanosleep(CLOCK_MONOTONIC,
TIMER_ABSTIME)`` with EINVAL, and that is what ``time.sleep`` calls. Sleep with a timed
wait instead, which works.
"""

import threading
import time
from typing import SupportsIndex


def _sleep(seconds: float | SupportsIndex) -> None:
    length = float(seconds)
    if length < 0:
        raise ValueError("sleep length must be non-negative")
    threading.Event().wait(length)


time.sleep = _sleep
