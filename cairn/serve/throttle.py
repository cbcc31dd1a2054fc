"""Throttling of failed logins for `cairn serve`, per user name and per client address.

Each failed login is remembered for ``window`` seconds. Once a user name has
``per_user`` failures in the window, or a client address ``per_address``, further
logins for that name or from that address are refused without checking the password
(so without argon2's cost) until the oldest failure leaves the window: the answer is
ClickHouse's AUTHENTICATION_FAILED (516) with HTTP 429 and ``Retry-After``. A success
does not clear the failures (an attacker interleaving a known account's logins gains
nothing). Memory is bounded: at most ``max_keys`` names and addresses are tracked, the
stalest forgotten first.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from typing import Callable


class LoginThrottle:
    """Failed logins per key ("user:<name>", "addr:<ip>") in a sliding window."""

    def __init__(self, per_user: int, per_address: int, window: float, max_keys: int = 10000,
                 clock: Callable[[], float] = time.monotonic):
        self.per_user, self.per_address, self.window = per_user, per_address, window
        self._max_keys = max_keys
        self._clock = clock
        self._failures: "OrderedDict[str, deque[float]]" = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and now - times[0] >= self.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def retry_after(self, user: str, address: str) -> float:
        """Seconds until a login for ``user`` from ``address`` may be tried (0: now)."""
        now = self._clock()
        wait = 0.0
        with self._lock:
            for key, limit in ((f"user:{user}", self.per_user), (f"addr:{address}", self.per_address)):
                times = self._recent(key, now)
                if times is not None and len(times) >= limit:
                    # Allowed again when enough failures have left the window.
                    wait = max(wait, times[len(times) - limit] + self.window - now)
        return wait

    def failed(self, user: str, address: str) -> None:
        """Remember a failed login."""
        now = self._clock()
        with self._lock:
            for key, limit in ((f"user:{user}", self.per_user), (f"addr:{address}", self.per_address)):
                times = self._recent(key, now)
                if times is None:
                    times = self._failures[key] = deque()
                times.append(now)
                while len(times) > limit:  # older failures add nothing once the limit is reached
                    times.popleft()
                self._failures.move_to_end(key)
            while len(self._failures) > self._max_keys:
                self._failures.popitem(last=False)


def retry_header(seconds: float) -> str:
    """The Retry-After value (whole seconds, at least 1)."""
    return str(max(1, math.ceil(seconds)))
