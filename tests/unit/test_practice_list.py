"""Reading a practice's registered list in memory: columns, malformed numbers by row, and clear refusals that name
the row or column but never a value."""

from __future__ import annotations

import numpy as np
import pytest

from features.sources.nhs_number import corrupt_check_digit, generate
from features.sources.practice_list import MAX_BYTES, MAX_ROWS, PracticeListError, parse, pseudonymise
from features.sources.pseudonymise import Pseudonymiser

NUMBERS = generate(np.random.default_rng(5), 6)


def _csv(rows: list[str], header: str = "NHS Number,Name,Date of Birth,Phone") -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


def test_reads_columns_spaced_numbers_and_keeps_other_columns() -> None:
    a, b = NUMBERS[:2]
    found = parse(_csv([f"{a[:3]} {a[3:6]} {a[6:]},Ann Lee,1950-02-03,07700 900001", f"{b},Bob Roy,1944-01-01,"]))
    assert [(e.row, e.nhs_number, e.name, e.date_of_birth) for e in found.entries] == [
        (1, a, "Ann Lee", "1950-02-03"),
        (2, b, "Bob Roy", "1944-01-01"),
    ]
    assert found.extra_columns == ["Phone"] and found.entries[0].extra == {"Phone": "07700 900001"}
    assert found.rows_read == 2 and found.malformed_rows == []


def test_malformed_numbers_are_listed_by_row_not_refused() -> None:
    bad = corrupt_check_digit(NUMBERS[:1])[0]
    found = parse(_csv([f"{NUMBERS[0]},A,x,", f"{bad},B,x,", ",C,x,", f"{NUMBERS[1]},D,x,", "0000000000,E,x,"]))
    assert found.malformed_rows == [2, 3, 5]
    assert [e.row for e in found.entries] == [1, 4]


def test_pseudonymised_like_the_loader() -> None:
    found = parse(_csv([f"{NUMBERS[0]},A,x,"]))
    pseudonymise(found, b"k" * 32)
    assert found.entries[0].person_id == Pseudonymiser(b"k" * 32).person_id(NUMBERS[0])


@pytest.mark.parametrize(
    "body,status,words",
    [
        (b"", 422, "empty"),
        (b"\n\n", 422, "empty"),
        (b"NHS Number,Name,Date of Birth\n", 422, "no rows"),
        (b"nhs_number,surname\n9434765919,X\n", 422, "missing: ['name', 'date_of_birth']"),
        (b"nhs_number,name,dob,nhs\n", 422, "more than once"),
        ("nhs_number,name,dob\n9434765919,Jos\u00e9,x\n".encode("latin-1"), 422, "line 2"),
        (b"nhs_number,name,dob\n9434765919,A,x\n4010232137,B\n", 422, "row 2 has 2 fields"),
        (b'nhs_number,name,dob\n9434765919,"A,x\n', 422, "row 1 is not valid CSV"),
        (b"nhs_number,name,dob,Phone, Phone\n9434765919,A,x,1,2\n", 422, "more than once (columns [4, 5])"),
    ],
)
def test_bad_lists_are_refused_naming_row_or_column(body: bytes, status: int, words: str) -> None:
    with pytest.raises(PracticeListError) as caught:
        parse(body)
    assert caught.value.status == status and words in str(caught.value)
    assert "9434765919" not in str(caught.value) and "Jos" not in str(caught.value)


def test_repeated_numbers_are_refused_naming_both_rows() -> None:
    a, b = NUMBERS[:2]
    with pytest.raises(PracticeListError) as caught:
        parse(_csv([f"{a},A,x,", f"{b},B,x,", f"{a[:3]}-{a[3:6]}-{a[6:]},C,x,"]))
    assert caught.value.status == 422 and "row 3 repeats row 1" in str(caught.value)
    assert a not in str(caught.value)


def test_size_and_row_limits_are_413() -> None:
    with pytest.raises(PracticeListError) as caught:
        parse(b"x" * (MAX_BYTES + 1))
    assert caught.value.status == 413
    rows = [f"{n},A,x," for n in generate(np.random.default_rng(9), MAX_ROWS + 1)]
    body = _csv(rows)
    assert len(body) <= MAX_BYTES
    with pytest.raises(PracticeListError) as caught:
        parse(body)
    assert caught.value.status == 413 and f"{MAX_ROWS:,}" in str(caught.value)


def test_a_byte_order_mark_and_crlf_are_read() -> None:
    found = parse(b"\xef\xbb\xbfNHS number,Name,DOB\r\n" + f"{NUMBERS[0]},A,x\r\n".encode())
    assert [e.nhs_number for e in found.entries] == [NUMBERS[0]]
