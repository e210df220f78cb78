"""People held out of the worklist for the programme's evaluation, as the service answers a lookup of them.

The daily job moves a person in the approved random holdout to band `routine` and keeps them in the listing record
(`evaluation.programme.listing`). A coordinator looking such a person up must not be told `routine` with a score:
that is false (the model would have listed them), and a score would invite the very care the holdout is there to
leave as usual. The lookup says plainly that the person is held out and withholds the score; the request is logged
as every person-level read is. If the record cannot be read the service cannot tell who is held out, so person-level
lookups fail closed (`HoldoutUnknown`). The live scores' own `held_out` people are added: an event delta can hold
out someone the daily job has not recorded yet (`serving.batch.delta`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from evaluation.programme import listing
from phm.core.settings import Settings

HELD_OUT_NOTE = (
    "Held out of the worklist for the programme's evaluation: this person is in the random holdout approved by "
    "the clinical safety officer, so their score is withheld and they are not offered the programme; their care "
    "continues as usual."
)


class HoldoutUnknown(RuntimeError):
    """The listing record exists but cannot be read: who is held out is unknown."""


class HeldOut:
    """The pseudonyms held out of `model`'s worklist, re-read whenever the listing record changes on disk, with
    those the `live` scores hold out (the service's current bundle)."""

    def __init__(self, settings: Settings, model: str, live: Callable[[], frozenset[int]] | None = None) -> None:
        self.settings, self.model = settings, model
        self.live = live or frozenset
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._ids: frozenset[int] = frozenset()
        self._union: tuple[frozenset[int], frozenset[int], frozenset[int]] | None = None  # (record, live, both)

    def ids(self) -> frozenset[int]:
        path = listing.record_path(self.settings, self.model)
        try:
            st = path.stat()
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            stamp = None  # no record yet: nobody has been held out
        with self._lock:
            if stamp != self._stamp or stamp is None:
                try:
                    frame = listing.read(self.settings, self.model)
                except listing.ListingRecordError as exc:
                    raise HoldoutUnknown(
                        f"the worklist's listing record cannot be read ({exc}); person-level lookups are refused "
                        "until it is restored, so that nobody in the evaluation's holdout is shown a score"
                    ) from None
                self._ids = frozenset(int(p) for p in frame.person_id[frame.held_out.astype(bool)])
                self._stamp = stamp
            live = self.live()
            if self._union is None or self._union[0] is not self._ids or self._union[1] is not live:
                self._union = (self._ids, live, self._ids if live <= self._ids else self._ids | live)
            return self._union[2]
