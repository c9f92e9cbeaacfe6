"""A token bucket for per-session message rates, on an injected clock."""

from __future__ import annotations

from rtaudio.clock import Clock
from rtaudio.errors import ConfigError


class TokenBucket:
    """Allows `rate_per_s` events per second on average and bursts of `burst` events.

    Tokens refill continuously; `take()` spends one and says whether the event is allowed.
    """

    def __init__(self, rate_per_s: float, burst: float, clock: Clock) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ConfigError("token bucket needs rate_per_s > 0 and burst >= 1")
        self._rate = rate_per_s
        self._burst = burst
        self._clock = clock
        self._tokens = burst
        self._last_ns = clock.now_ns()

    def take(self, cost: float = 1.0) -> bool:
        now = self._clock.now_ns()
        self._tokens = min(self._burst, self._tokens + (now - self._last_ns) * 1e-9 * self._rate)
        self._last_ns = now
        if self._tokens >= cost:
            self._tokens -= cost
            return True
        return False
