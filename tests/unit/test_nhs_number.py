import numpy as np
import pytest

from features.sources import nhs_number


@pytest.mark.parametrize("number", ["9434765919", "4010232137", "9876543210"])
def test_known_valid_numbers(number: str) -> None:
    assert nhs_number.is_valid(number)


@pytest.mark.parametrize("number", ["9434765918", "943476591", "94347659190", "94347a5919", ""])
def test_invalid_numbers(number: str) -> None:
    assert not nhs_number.is_valid(number)


def test_check_digit_ten_means_no_valid_number() -> None:
    # 1,2,...: find a 9-digit body whose check would be 10 and confirm it is rejected
    body = next(f"{i:09d}" for i in range(100_000_000, 100_001_000) if nhs_number.check_digit(f"{i:09d}") is None)
    assert all(not nhs_number.is_valid(body + str(d)) for d in range(10))


def test_generate_is_valid_distinct_and_seeded() -> None:
    a = nhs_number.generate(np.random.default_rng(5), 5_000)
    b = nhs_number.generate(np.random.default_rng(5), 5_000)
    assert (a == b).all()
    assert len(set(a.tolist())) == 5_000
    assert all(nhs_number.is_valid(n) for n in a.tolist())


def test_corrupt_check_digit_invalidates() -> None:
    good = nhs_number.generate(np.random.default_rng(1), 500)
    bad = nhs_number.corrupt_check_digit(good)
    assert not any(nhs_number.is_valid(n) for n in bad.tolist())
    assert all(g[:9] == b[:9] for g, b in zip(good.tolist(), bad.tolist()))


@pytest.mark.parametrize(
    "number",
    ["0xf72223d5", "943_476_59", "+943476591", "９４３４７６５９１９", "٩٤٣٤٧٦٥٩١٩", " 943476591", "943476591 "],
)
def test_only_ten_ascii_digits(number: str) -> None:
    """No hex, digit separators, signs, full-width or other scripts' digits, or padding."""
    assert not nhs_number.is_valid(number)


@pytest.mark.parametrize("digit", "0123456789")
def test_one_digit_ten_times_is_rejected_though_its_check_digit_passes(digit: str) -> None:
    number = digit * 10
    assert nhs_number.check_digit(number[:9]) == int(digit)  # every such number passes modulus 11
    assert not nhs_number.is_valid(number)


def test_normalise_removes_spaces_and_dashes_only() -> None:
    assert nhs_number.normalise(" 943 476-5919 ") == "9434765919"
    assert not nhs_number.is_valid(nhs_number.normalise("943_476_5919"))


def test_generate_never_draws_one_digit_ten_times() -> None:
    numbers = nhs_number.generate(np.random.default_rng(3), 200_000)
    assert not any(len(set(n)) == 1 for n in numbers.tolist())
