"""NHS number check digit (modulus 11), validation and vectorised generation."""

from __future__ import annotations

import numpy as np

_WEIGHTS = np.arange(10, 1, -1)  # 10, 9, ..., 2 for digits 1-9


def check_digit(first_nine: str) -> int | None:
    """Check digit for nine digits, or None when the number cannot be valid (check 10)."""
    total = sum(int(d) * w for d, w in zip(first_nine, _WEIGHTS))
    check = 11 - total % 11
    if check == 11:
        return 0
    return None if check == 10 else check


_ASCII_DIGITS = frozenset("0123456789")


def normalise(text: str) -> str:
    """An NHS number as written (`943 476 5919`, `943-476-5919`) without its spaces and dashes."""
    return text.strip().replace(" ", "").replace("-", "")


def is_valid(number: str) -> bool:
    """True for ten ASCII digits (not one digit ten times: `0000000000` passes the check digit but is not a
    number anyone holds) whose last digit is the modulus-11 check digit. No hex, signs or digit separators."""
    if len(number) != 10 or not set(number) <= _ASCII_DIGITS or len(set(number)) == 1:
        return False
    d = number.encode()  # ASCII codes: digit = code - 48; the weights 10..2 sum to 54
    total = d[0] * 10 + d[1] * 9 + d[2] * 8 + d[3] * 7 + d[4] * 6 + d[5] * 5 + d[6] * 4 + d[7] * 3 + d[8] * 2 - 48 * 54
    check = (11 - total % 11) % 11  # 11 -> 0; 10 is never a valid check digit
    return check != 10 and check == d[9] - 48


def generate(rng: np.random.Generator, n: int) -> np.ndarray:
    """`n` distinct valid NHS numbers as strings (vectorised).

    Numbers start with 4-9 like issued English numbers; candidates whose check digit would be 10
    are redrawn.
    """
    out = np.empty(0, dtype=np.int64)
    while out.size < n:
        need = int((n - out.size) * 1.2) + 16
        body = rng.integers(400_000_000, 1_000_000_000, size=need, dtype=np.int64)
        digits = (body[:, None] // 10 ** np.arange(8, -1, -1)) % 10
        check = 11 - (digits * _WEIGHTS).sum(axis=1) % 11
        check = np.where(check == 11, 0, check)
        ok = (check != 10) & (body % 111_111_111 != 0)  # never one digit ten times (d x 111111111 = ddddddddd)
        numbers = body[ok] * 10 + check[ok]
        out = np.unique(np.concatenate([out, numbers]))
    out = rng.permutation(out)[:n]
    return out.astype("U10")


def corrupt_check_digit(numbers: np.ndarray) -> np.ndarray:
    """Same numbers with the check digit changed so that each is invalid."""
    ints = numbers.astype(np.int64)
    last = ints % 10
    return (ints - last + (last + 1) % 10).astype("U10")
