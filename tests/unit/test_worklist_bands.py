"""The Worklist page states the band cut-offs the scores were banded with, never the defaults typed in."""

from __future__ import annotations

import re
from pathlib import Path

from serving.web import views

TEMPLATE = Path(views.__file__).parent / "templates" / "worklist.html"


def test_band_words_follow_the_snapshots_cut_offs() -> None:
    default = {"very high": 0.005, "high": 0.02, "raised": 0.05}
    assert (
        views.band_words(default)
        == "Bands: very high is the top 0.5% of the ICS, high the next 1.5%, raised the next 3%."
    )
    widened = {"very high": 0.005, "high": 0.02, "raised": 0.10}  # an approved change (configuration guide)
    assert views.band_words(widened).endswith("raised the next 8%.")
    assert views.band_words({}) == ""


def test_the_worklist_page_types_no_band_share() -> None:
    # the page said "raised the next 3%" whatever the approved cut-offs: a coordinator misread the bands
    assert not re.search(r"\d%", TEMPLATE.read_text())
    assert "view.band_words" in TEMPLATE.read_text()
