"""A secret token checked so that guessing it is slow: after each wrong token every try is
refused for a while, twice as long as after the one before (1 s, 2 s, 4 s... up to MAX_DELAY),
and the right token resets it. Refused at once, never by sleeping: a sleeping request would hold
a worker of the app's queue."""
from __future__ import annotations

import hmac
import threading
import time

from .text import MAX_TEXT_INPUT

FIRST_DELAY = 1.0    # seconds after the first wrong token
MAX_DELAY = 300.0    # after many: at most 12 guesses an hour


class TokenRefused(Exception):
    """Why a token was not accepted, said to the person who typed it."""


class TokenGate:
    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._lock = threading.Lock()
        self._wrong = 0
        self._open_at = 0.0

    def check(self, token, expected: str) -> None:
        """Returns when `token` is `expected`; TokenRefused otherwise (wrong, or too soon)."""
        with self._lock:
            now = self.clock()
            if now < self._open_at:
                raise TokenRefused(f"Too many wrong tokens: try again in "
                                   f"{self._open_at - now:.0f} s.")
            token = str(token or "")
            right = (len(token) <= MAX_TEXT_INPUT and
                     hmac.compare_digest(token.encode(), expected.encode()))
            if right:
                self._wrong = 0
                return
            self._wrong += 1
            delay = min(FIRST_DELAY * 2 ** (self._wrong - 1), MAX_DELAY)
            self._open_at = now + delay
        raise TokenRefused(f"Wrong token. The next try is possible in {delay:.0f} s.")
