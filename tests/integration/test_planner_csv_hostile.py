"""A planner's CSV that is damaged, odd or hostile: every problem is a clear error naming the file and the
physical line or field, never a traceback and never a cell's contents (cells can hold NHS numbers or names),
read through `read_series_csv` and, for a few representative cases, through the real `phm forecast fit`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from features.planner_csv import SeriesFileError, parse_columns, read_series_csv
from models.forecasting.calendar import check_calendar, holiday_days
from support.cli import run as phm
from training.demand import ForecastConfig

NHS = "9434765919"  # a fake NHS number planted in cells: it must never reach an error message
NAME = "John Smith"
HEADER = "date,site,metric,value,capacity\n"


def days(n: int = 5, site: str = "RXX01", metric: str = "beds", capacity: str = "20") -> str:
    return "".join(f"2020-08-{d:02d},{site},{metric},{10 + d},{capacity}\n" for d in range(1, n + 1))


def write(tmp_path: Path, text: str | bytes, name: str = "series.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def refusal(path: Path, match: str, **options) -> str:
    """The error read_series_csv gives: it matches, names the file, and quotes no planted cell."""
    with pytest.raises(SeriesFileError, match=match) as info:
        read_series_csv(path, **options)
    message = str(info.value)
    assert NHS not in message and NAME not in message, message
    return message


def test_headerless_file_with_columns_says_what_is_missing_not_what_the_first_row_holds(tmp_path: Path) -> None:
    rows = f"2020-08-01,{NHS},{NAME},12\n2020-08-02,{NHS},{NAME},13\n"
    path = write(tmp_path, rows)
    message = refusal(
        path,
        r"series.csv: --columns names column\(s\) not in the file: 'Date' \(for date\), 'Occupied' \(for value\); "
        r"its first line has 4 column\(s\).*must be the header",
        columns=parse_columns("date=Date,value=Occupied"),
    )
    assert "2020-08-01" not in message and "12" not in message
    refusal(path, r"missing column\(s\) \['date', 'site', 'metric', 'value'\]")  # no --columns: field names only


def test_refusals_name_physical_lines_past_blank_lines_and_quoted_line_breaks(tmp_path: Path) -> None:
    text = (
        "date,site,metric,value,notes\n"  # 1
        "2020-08-01,RXX01,beds,10,\n"  # 2
        "\n"  # 3
        "\n"  # 4
        '2020-08-02,RXX01,beds,11,"a note\n'  # 5
        "over three\n"  # 6
        'lines"\n'  # 7
        f"2020-08-03,RXX01,beds,{NHS}x,\n"  # 8: not a number
        "\r\n"  # 9
        "2020-08-04,RXX01,beds,13,\r\n"  # 10
        "2020-08-05,RXX01,beds,,\n"  # 11: missing
    )
    refusal(write(tmp_path, text), r"field value: missing or not a number on line\(s\) \[8, 11\]$")
    clash = text.replace(f"{NHS}x", "12").replace("2020-08-05,RXX01,beds,,", "2020-08-02,RXX01,beds,99,")
    refusal(write(tmp_path, clash), r"RXX01/beds has different values for 2020-08-02 on lines \[5, 11\]")


def test_a_directory_or_an_unreadable_file_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    refusal(folder, r"exports: is a directory, not a CSV file")
    fit = phm("forecast", "fit", "--csv", str(folder), home=tmp_path / "home")
    assert fit.returncode == 2, fit.stderr[-2000:]
    assert "Error:" in fit.stderr and "is a directory, not a CSV file" in fit.stderr
    assert "Traceback" not in fit.stderr
    path = write(tmp_path, HEADER + days())

    def denied(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)  # the tests run as root, so chmod would not stop a read
    refusal(path, r"series.csv: cannot be read \(Permission denied\)")


@pytest.mark.parametrize(
    ("header", "columns", "named"),
    [
        ("date,site,metric,value,Value", None, r"columns 'value', 'Value' both give field value"),
        ("Date,date ,site,metric,value", None, r"columns 'Date', 'date ' both give field date"),
        ("Date,site,metric,value,Occupied", "value=Occupied,date=Date", r"columns 'value', 'Occupied' both give field"),
    ],
)
def test_two_columns_landing_on_one_field_are_refused_naming_them(
    tmp_path: Path, header: str, columns: str | None, named: str
) -> None:
    rows = "".join(f"2020-08-0{d},2020-08-0{d},{NHS},{d},{d}\n" for d in range(1, 4))
    refusal(write(tmp_path, header + "\n" + rows), r"series.csv: " + named, columns=parse_columns(columns))


def test_timestamps_with_mixed_utc_offsets_are_read_at_their_own_local_dates(tmp_path: Path) -> None:
    stamps = [
        "2020-08-01T00:00:00Z",
        "2020-08-02T00:00:00+01:00",  # summer time: in UTC this is 1 August, but the planner's day is the 2nd
        "2020-08-03 00:00:00+0100",
        "2020-08-04",
        "2020-08-05T23:30:00-05:00",  # in UTC the 6th
    ]
    path = write(tmp_path, HEADER + "".join(f"{s},RXX01,beds,{10 + i},20\n" for i, s in enumerate(stamps)))
    frame, warnings = read_series_csv(path)
    assert frame.date.dt.tz is None and warnings == []
    assert list(frame.date) == list(pd.date_range("2020-08-01", periods=5, freq="D"))
    assert list(frame.value) == [10.0, 11.0, 12.0, 13.0, 14.0]
    refusal(write(tmp_path, HEADER + "2020-08-01T00:00:00+01:00,A,b,1,\n2020-13-01T00:00Z,A,b,1,\n"), r"date.* \[3\]")


def test_an_unknown_holiday_subdivision_is_refused_up_front_with_the_valid_ones() -> None:
    for calendar, country in (("GB-XYZ", "GB"), ("US-ZZ", "US")):
        with pytest.raises(ValueError, match=rf"unknown holiday calendar '{calendar}': {country} has no subdivision"):
            check_calendar(calendar)
    with pytest.raises(ValueError, match=r"its subdivisions are GB-ENG, GB-NIR, GB-SCT, GB-WLS"):
        check_calendar("GB-XYZ")
    with pytest.raises(ValidationError, match=r"GB has no subdivision 'XYZ'"):
        ForecastConfig(holidays="GB-XYZ")
    assert check_calendar("GB-SCT") == "GB-SCT" and check_calendar("gb-sct") == "GB-SCT"
    assert check_calendar("US-CA") == "US-CA" and check_calendar("US") == "US"
    assert pd.Timestamp("2024-08-05") in holiday_days(check_calendar("gb-sct"), 2024, 2024)  # it builds


def test_an_unknown_holiday_subdivision_through_phm(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + days())
    fit = phm("forecast", "fit", "--csv", str(path), "--holidays", "GB-XYZ", home=tmp_path / "home")
    assert fit.returncode == 2, fit.stderr[-2000:]
    assert "GB has no subdivision 'XYZ'" in fit.stderr and "GB-SCT" in fit.stderr
    assert "Traceback" not in fit.stderr and "NotImplementedError" not in fit.stderr


@pytest.mark.parametrize("bad", ["inf", "Infinity", "-inf", "1E+308", "99999999999999999999999", "1000000001"])
def test_infinite_and_absurd_numbers_are_refused_naming_line_and_field(tmp_path: Path, bad: str) -> None:
    good = days(3)
    value = good + f"2020-08-04,RXX01,beds,{bad},20\n"
    refusal(write(tmp_path, HEADER + value), r"series.csv: field value: not a usable number .*on line\(s\) \[5\]")
    if bad != "-inf":  # a negative capacity is refused as not positive
        capacity = good + f"2020-08-04,RXX01,beds,14,{bad}\n"
        refusal(
            write(tmp_path, HEADER + capacity), r"series.csv: field capacity: not a usable number .*on line\(s\) \[5\]"
        )
    frame, _ = read_series_csv(write(tmp_path, HEADER + good + "2020-08-04,RXX01,beds,999999999,1000000000\n"))
    assert frame.value.iloc[-1] == 999999999.0 and frame.capacity.iloc[-1] == 1e9  # large but usable: kept


def test_empty_and_header_only_files_are_named(tmp_path: Path) -> None:
    refusal(write(tmp_path, "", "empty.csv"), r"empty.csv: has no rows")
    refusal(write(tmp_path, "\n\r\n  \n", "blank.csv"), r"blank.csv: has no rows")
    refusal(write(tmp_path, HEADER, "header.csv"), r"header.csv: has a header but no data rows")
    refusal(write(tmp_path, HEADER + "\n\n", "header2.csv"), r"header2.csv: has a header but no data rows")


def test_rows_differing_only_in_capacity_are_refused_not_dropped(tmp_path: Path) -> None:
    twice = HEADER + days(3) + "2020-08-02,RXX01,beds,12,25\n"  # line 5: line 3's day and value, another capacity
    refusal(write(tmp_path, twice), r"RXX01/beds has different capacities for 2020-08-02 on lines \[3, 5\]")
    blank = HEADER + days(3) + "2020-08-02,RXX01,beds,12,\n"  # capacity given once, left blank once
    refusal(write(tmp_path, blank), r"different capacities for 2020-08-02 on lines \[3, 5\]")
    same = HEADER + days(3) + "2020-08-02,RXX01,beds,12,20\n"
    frame, warnings = read_series_csv(write(tmp_path, same))
    assert len(frame) == 3 and warnings == ["dropped 1 exact duplicate row(s) (first on line 5)"]


def test_one_column_mapped_to_two_fields_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        SeriesFileError, match=r"--columns: column 'Date' is mapped to more than one field \(date, value"
    ):
        parse_columns("date=Date,value=Date")
    with pytest.raises(SeriesFileError, match=r"--columns: field 'date' is mapped twice"):
        parse_columns("date=Date,date=Day")
    path = write(tmp_path, "Date,site,metric,Occupied\n2020-08-01,RXX01,beds,1\n")
    refusal(path, r"column 'Date' is mapped to more than one field", columns={"date": "Date", "value": "Date"})


def test_a_nul_byte_is_refused_naming_its_line(tmp_path: Path) -> None:
    text = HEADER + days(2) + "2020-08-03,A\0K,beds,13,20\n" + f"2020-08-04,RXX01,beds,14,20{NHS}\0\n"
    refusal(write(tmp_path, text), r"series.csv: a NUL byte on line\(s\) \[4, 5\]; the file is damaged")


def test_a_slash_in_a_site_or_metric_is_refused_with_the_reason(tmp_path: Path) -> None:
    both = HEADER + days(2, site="A/B") + days(2, site="A", metric="B/beds")
    refusal(write(tmp_path, both), r"field site: contains '/' on line\(s\) \[2, 3\]; results are named site/metric")
    metric = HEADER + days(2) + days(2, metric="ga/beds")
    refusal(write(tmp_path, metric), r"field metric: contains '/' on line\(s\) \[4, 5\].*would be one series")


def test_a_line_break_or_control_character_in_a_name_is_refused(tmp_path: Path) -> None:
    quoted = HEADER + days(2) + '2020-08-03,"RXX\n01",beds,13,20\n'  # a quoted break: the record starts on line 4
    refusal(write(tmp_path, quoted), r"field site: holds a line break or another control character on line\(s\) \[4\]")
    tab = HEADER + days(2, metric="beds\tga")
    refusal(write(tmp_path, tab), r"field metric: holds a line break .* on line\(s\) \[2, 3\]; names are shown")


def test_a_headerless_file_through_phm_names_no_cell(tmp_path: Path) -> None:
    path = write(tmp_path, f"2020-08-01,{NHS},{NAME},12\n", "patients.csv")
    fit = phm("forecast", "fit", "--csv", str(path), "--columns", "date=Date,value=Occupied", home=tmp_path / "home")
    assert fit.returncode == 2, fit.stderr[-2000:]
    assert "patients.csv: --columns names column(s) not in the file" in fit.stderr and "Error:" in fit.stderr
    assert NHS not in fit.stderr + fit.stdout and NAME not in fit.stderr + fit.stdout
    assert "Traceback" not in fit.stderr
