"""The errors the label store raises; each message says what to change."""

from __future__ import annotations

from datetime import datetime


class LabelStoreError(ValueError):
    """A request the store refuses (unknown pair, label or status); the message says what to change."""


class ConcurrentEditError(LabelStoreError):
    """The pair was saved by someone else after the caller loaded it; reload and decide again."""

    def __init__(self, pair_id: int, annotator: str, revision: int, saved_at: datetime | None):
        self.pair_id, self.annotator, self.revision, self.saved_at = pair_id, annotator, revision, saved_at
        when = f" at {saved_at:%Y-%m-%d %H:%M:%S} UTC" if saved_at else ""
        super().__init__(
            f"pair {pair_id} was changed by {annotator} meanwhile (revision {revision}{when}); "
            "reload it and save again"
        )
