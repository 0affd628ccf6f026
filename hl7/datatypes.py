"""HL7 v2 date/time values (DT, DTM, TS component 1) to Python objects."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

_DTM = re.compile(
    r"^(\d{4})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:\.(\d{1,4}))?)?)?)?)?)?"
    r"([+-]\d{4})?$"
)


def parse_datetime(value: str) -> datetime:
    """``YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]`` -> datetime.

    Missing parts default to the start of the period; a zone offset gives an
    aware datetime, otherwise it is naive (local time of the sender).
    Raises ValueError for anything else.
    """
    m = _DTM.match(value.strip())
    if m is None:
        raise ValueError("not an HL7 date/time")
    year, month, day, hour, minute, second, frac, zone = m.groups()
    tz = None
    if zone:
        hours, minutes = int(zone[1:3]), int(zone[3:5])
        if hours > 14 or minutes > 59:
            raise ValueError("bad time zone offset")
        offset = timedelta(hours=hours, minutes=minutes)
        tz = timezone(-offset if zone[0] == "-" else offset)
    micro = int((frac or "0").ljust(6, "0")) if frac else 0
    return datetime(
        int(year),
        int(month or 1),
        int(day or 1),
        int(hour or 0),
        int(minute or 0),
        int(second or 0),
        micro,
        tzinfo=tz,
    )


def format_datetime(value: datetime, seconds: bool = True) -> str:
    """datetime -> ``YYYYMMDDHHMM[SS]`` plus ``+ZZZZ`` for aware values."""
    text = value.strftime("%Y%m%d%H%M%S" if seconds else "%Y%m%d%H%M")
    if value.tzinfo is not None:
        text += value.strftime("%z")
    return text


def format_date(value: date) -> str:
    """date -> ``YYYYMMDD``."""
    return value.strftime("%Y%m%d")
