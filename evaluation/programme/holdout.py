"""Learning safely when the model changes care (Liley et al., "Model updating after interventions paradoxically
introduces bias", 2021): a random holdout among the people the model would list, and training weights that keep a
retrained model from learning the programme's success as lower risk.

A person is in the holdout of a model when a keyed hash of their pseudonym falls below the approved holdout
share (`held_out`): the draw is random with respect to everything recorded about them, the same on every day and
engine, and a person held out stays held out. Held-out people are never listed (their band is `routine`), so their
outcomes are what the listed would have had without the programme.

`safe_weights` then gives a training row weight 0 when the programme may have touched its outcome (offered or
enrolled while listed, not held out) and 1 / holdout share to the held-out (each stands for itself and the listed
people who were not held out); everyone else (never listed) keeps weight 1. The weighted sample is a random-sample
reweighting of the population as it would have been without the programme.
"""

from __future__ import annotations

import hashlib

import numpy as np

SALT = "phm-holdout-v1"


def draws(person_ids, model: str) -> np.ndarray:
    """A uniform number in [0, 1) per person: the first 52 bits of SHA-256 of `SALT:model:person_id`."""
    prefix = f"{SALT}:{model}:".encode()
    return np.fromiter(
        (int.from_bytes(hashlib.sha256(prefix + str(p).encode()).digest()[:7], "big") >> 4 for p in person_ids),
        dtype=np.float64,
        count=len(person_ids),
    ) / float(1 << 52)


def held_out(person_ids, model: str, share: float) -> np.ndarray:
    """Whether each person is in `model`'s holdout at this `share` (0: nobody). A person held out at a share is
    held out at every larger share."""
    if not 0 <= share < 1:
        raise ValueError(f"holdout share {share!r} is not in [0, 1)")
    if share == 0 or len(person_ids) == 0:
        return np.zeros(len(person_ids), bool)
    return draws(person_ids, model) < share


def safe_weights(treated: np.ndarray, held: np.ndarray, share: float) -> np.ndarray:
    """Training weights: 0 for rows whose outcome the programme may have changed (`treated`: listed and offered
    or enrolled before the end of the outcome window), 1 / `share` for the held-out, 1 for the rest."""
    treated, held = np.asarray(treated, bool), np.asarray(held, bool)
    if (treated & held).any():
        raise ValueError(f"{int((treated & held).sum())} rows are both treated and held out")
    if held.any() and not 0 < share < 1:
        raise ValueError(f"held-out rows need a holdout share in (0, 1), not {share!r}")
    weights = np.ones(treated.size)
    weights[treated] = 0.0
    if held.any():
        weights[held] = 1.0 / share
    return weights


def enrolment_weights(enrolled: np.ndarray, listed: np.ndarray) -> np.ndarray:
    """Without a holdout, the next best thing: drop the enrolled and weight the listed who were not enrolled by
    listed / not enrolled (valid only if who accepts is unrelated to risk, which a holdout does not need)."""
    enrolled, listed = np.asarray(enrolled, bool), np.asarray(listed, bool)
    if (enrolled & ~listed).any():
        raise ValueError("an enrolled row is not listed")
    weights = np.ones(enrolled.size)
    weights[enrolled] = 0.0
    rest = listed & ~enrolled
    if rest.any():
        weights[rest] = listed.sum() / rest.sum()
    return weights
