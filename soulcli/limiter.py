"""How many tasks a batch keeps in flight: halved on a 429, grown back one at a time."""

from __future__ import annotations

import threading
import time


class AdaptiveLimit:
    """A counting gate whose size shrinks when the API rate-limits and recovers slowly."""

    def __init__(self, maximum: int, *, cool_down: float = 15.0) -> None:
        self.maximum = max(1, maximum)
        self.limit = self.maximum
        self.active = 0
        self._cool_down = cool_down
        self._calm_after = 0.0
        self._last_cut = 0.0
        self._cond = threading.Condition()

    def acquire(self, stop: threading.Event) -> bool:
        """Wait for a slot; False if `stop` was set first."""
        with self._cond:
            while self.active >= self.limit:
                if stop.is_set():
                    return False
                self._cond.wait(0.1)
            if stop.is_set():
                return False
            self.active += 1
            return True

    def release(self) -> None:
        with self._cond:
            self.active -= 1
            if self.limit < self.maximum and time.monotonic() >= self._calm_after:
                self.limit += 1  # additive increase once the API has been calm for a while
            self._cond.notify_all()

    def throttle(self) -> None:
        """A 429 arrived: halve the limit (at most once a second: a burst is one signal)."""
        with self._cond:
            now = time.monotonic()
            if now - self._last_cut >= 1.0:
                self.limit = max(1, self.limit // 2)
                self._last_cut = now
            self._calm_after = now + self._cool_down
