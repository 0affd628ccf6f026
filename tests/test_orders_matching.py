"""PS3.4 C-FIND matching on datasets: single value, wildcards, ranges, UID lists, sequences,
combined date-time, universal matching, and the response holding only the asked keys."""

from __future__ import annotations

import pytest
from pydicom import Dataset
from pydicom.sequence import Sequence

from gateway.orders.matching import in_range, match_value, matches, select_keys

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("key", "value", "vr", "expected"),
    [
        ("", "anything", "LO", True),
        ("CT01", "CT01", "AE", True),
        ("CT01", "CT02", "AE", False),
        ("CT0?", "CT07", "AE", True),
        ("CT0?", "CT10", "AE", False),
        ("CT01", "CT02\\CT01", "AE", True),  # any value of a multi-valued attribute
        ("NGUY*", "NGUYỄN^VĂN AN", "PN", True),
        ("nguyễn^văn an", "NGUYỄN^VĂN AN", "PN", True),  # PN: case-insensitive
        ("*VĂN*", "TRẦN^THỊ MAI", "PN", False),
        ("N*N^V?N*", "NGUYỄN^VĂN AN", "PN", True),
        ("1.2.3\\1.2.4", "1.2.4", "UI", True),
        ("1.2.3\\1.2.4", "1.2.5", "UI", False),
        ("A*", "a1", "SH", False),  # other VRs: case-sensitive
    ],
)
def test_match_value(key: str, value: str, vr: str, expected: bool) -> None:
    assert match_value(key, value, vr) is expected


@pytest.mark.parametrize(
    ("key", "value", "vr", "expected"),
    [
        ("20261125", "20261125", "DA", True),
        ("20261125", "20261126", "DA", False),
        ("20261120-20261130", "20261125", "DA", True),
        ("20261120-20261130", "20261201", "DA", False),
        ("-20261130", "20240101", "DA", True),
        ("20261126-", "20261125", "DA", False),
        ("0800-1000", "093000", "TM", True),
        ("0800-1000", "100059", "TM", True),  # an end of 10:00 includes 10:00:59
        ("0800-1000", "100100", "TM", False),
        ("10", "105959", "TM", True),
        ("-0800", "080000", "TM", True),
        ("20261125", "", "DA", False),
    ],
)
def test_ranges(key: str, value: str, vr: str, expected: bool) -> None:
    assert in_range(key, value, vr) is expected


def _item(date: str, time: str, station: str = "CT01", name: str = "LÊ^HOÀNG^MINH") -> Dataset:
    ds = Dataset()
    ds.PatientName = name
    ds.PatientID = "P1"
    sps = Dataset()
    sps.ScheduledStationAETitle = station
    sps.ScheduledProcedureStepStartDate = date
    sps.ScheduledProcedureStepStartTime = time
    sps.Modality = "CT"
    ds.ScheduledProcedureStepSequence = Sequence([sps])
    return ds


def _request(**sps_keys: str) -> Dataset:
    ds = Dataset()
    ds.PatientName = ""
    sps = Dataset()
    for key, value in sps_keys.items():
        setattr(sps, key, value)
    ds.ScheduledProcedureStepSequence = Sequence([sps])
    return ds


def test_sequence_matching_and_combined_datetime() -> None:
    item = _item("20261125", "233000")
    assert matches(_request(ScheduledStationAETitle="CT01"), item)
    assert not matches(_request(ScheduledStationAETitle="MR01"), item)
    assert matches(_request(Modality="C?"), item)
    # Combined: 25 Nov 22:00 to 26 Nov 06:00 includes 25 Nov 23:30 (a night shift).
    night = _request(
        ScheduledProcedureStepStartDate="20261125-20261126",
        ScheduledProcedureStepStartTime="2200-0600",
    )
    assert matches(night, item)
    assert matches(night, _item("20261126", "053000"))
    assert not matches(night, _item("20261126", "070000"))
    # Separately matched, the same time range would have excluded 23:30 on a single date.
    single = _request(
        ScheduledProcedureStepStartDate="20261125", ScheduledProcedureStepStartTime="0800-1000"
    )
    assert not matches(single, item)
    assert matches(single, _item("20261125", "090000"))


def test_empty_sequence_is_universal_and_response_has_only_asked_keys() -> None:
    item = _item("20261125", "090000")
    request = Dataset()
    request.PatientID = ""
    request.ScheduledProcedureStepSequence = Sequence([])
    assert matches(request, item)
    response = select_keys(request, item)
    assert [e.keyword for e in response] == ["PatientID", "ScheduledProcedureStepSequence"]
    assert response.ScheduledProcedureStepSequence[0].Modality == "CT"  # whole sequence

    narrow = _request(Modality="")
    narrow.AccessionNumber = ""  # unknown to the item: returned empty
    response = select_keys(narrow, item)
    assert response.AccessionNumber in (None, "")
    sps = response.ScheduledProcedureStepSequence[0]
    assert [e.keyword for e in sps] == ["Modality"]
    assert str(response.PatientName) == "LÊ^HOÀNG^MINH"
