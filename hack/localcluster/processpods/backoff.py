"""The kubelet's restart back-off: base, doubling per restart in a row, capped."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    base: float = 10.0
    cap: float = 300.0

    def delay(self, failures_in_a_row: int) -> float:
        """Seconds to wait before restart number `failures_in_a_row` (1 = the first)."""
        if failures_in_a_row <= 0:
            return 0.0
        return float(min(self.cap, self.base * 2 ** min(failures_in_a_row - 1, 62)))

    def resets_after(self, ran_for: float) -> bool:
        """A container that ran this long before exiting starts a fresh back-off, as the
        kubelet forgets a back-off entry after twice the cap without failures."""
        return ran_for >= 2 * self.cap
