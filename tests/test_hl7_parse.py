"""Parser: delimiters, charsets, terminators, escapes, accessors and structural errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from hl7.delimiters import DEFAULT_DELIMITERS, Delimiters
from hl7.errors import HL7Error
from hl7.escape import escape, unescape
from hl7.message import is_null, parse_path
from hl7.parse import parse, parse_header

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "fixtures" / "hl7"


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_fixtures_use_cr_terminators_and_utf8() -> None:
    raw = load("orm_o01_v23.hl7")
    assert b"\r" in raw and b"\n" not in raw
    assert "NGUYỄN".encode() in raw


def test_accessor_fields_components_repetitions() -> None:
    msg = parse(load("orm_o01_v23.hl7"))
    assert msg.get("PID-5-1") == "NGUYỄN"
    assert msg.get("PID-5.2") == "VĂN AN"
    assert msg.get("PID-5") == "NGUYỄN"
    assert msg.get("PID-3-1") == "BN000123"
    assert msg.get("PID-3(2)-1") == "079085001234"
    assert msg.get("PID-3(3)-5") == "HC"
    assert msg.get("PID-3(4)-1") == ""
    assert msg.get("PID-99") == ""
    assert msg.get("ZZZ-1") == ""
    reps = msg.repetitions("PID-3")
    assert [r.component(5) for r in reps] == ["MR", "NI", "HC"]
    assert reps[0].components() == ["BN000123", "", "", "BVDKTINH", "MR"]


def test_msh_numbering() -> None:
    msg = parse(load("orm_o01_v23.hl7"))
    assert msg.get("MSH-1") == "|"
    assert msg.get("MSH-2") == "^~\\&"
    assert msg.get("MSH-3") == "HIS"
    assert msg.get("MSH-3-2") == "BVDKT"
    assert msg.get("MSH-9-2") == "O01"
    assert (msg.message_type, msg.trigger_event, msg.control_id) == ("ORM", "O01", "MSG0001")
    assert msg.version == "2.3"
    assert msg.sending_application == "HIS" and msg.receiving_application == "RISGATE"


def test_segments_and_occurrences() -> None:
    msg = parse(load("orm_o01_v25.hl7"))
    assert [s.name for s in msg] == ["MSH", "PID", "PV1", "ORC", "TQ1", "OBR", "ORC", "TQ1", "OBR"]
    assert len(msg.segments("OBR")) == 2
    assert msg.get("OBR(2)-4-2") == "Siêu âm ổ bụng"
    assert msg.segment("OBR", 3) is None
    assert msg.segments("NTE") == []


def test_parse_path() -> None:
    assert parse_path("pid-3(2).4") == ("PID", 1, 3, 2, 4, 1)
    assert parse_path("OBR(2)-27-4-1") == ("OBR", 2, 27, 1, 4, 1)
    with pytest.raises(ValueError):
        parse_path("PID")


def test_custom_delimiters() -> None:
    msg = parse(load("orm_o01_custom_delims.hl7"))
    assert msg.delimiters == Delimiters("#", "$", "*", "@", "%")
    assert msg.get("MSH-1") == "#"
    assert msg.get("PID-5-1") == "ĐỖ"
    assert msg.get("PID-3(2)-5") == "NI"
    assert msg.get("OBR-4-2") == "Chụp nhũ ảnh 2 bên # 4 phim"


def test_latin1_charset_and_lf_terminators() -> None:
    raw = load("orm_o01_latin1.hl7")
    assert b"\n" in raw and "MÜLLER".encode("latin-1") in raw
    msg = parse(raw)
    assert msg.charset == "latin-1"
    assert msg.get("PID-5-1") == "MÜLLER"
    assert msg.get("OBR-4-2") == "Mammographie bilatérale"
    assert len(msg.segments()) == 4


@pytest.mark.parametrize("term", ["\r", "\n", "\r\n"])
def test_segment_terminators(term: str) -> None:
    text = load("orm_o01_v25.hl7").decode().replace("\r", term)
    msg = parse(text.encode())
    assert len(msg.segments()) == 9
    assert msg.get("PID-5-1") == "TRẦN"


def test_empty_msh18_uses_configurable_default() -> None:
    raw = load("orm_o01_latin1.hl7").replace(b"|8859/1", b"|")
    with pytest.raises(HL7Error) as err:
        parse(raw)
    assert (err.value.code, err.value.segment, err.value.field_position) == ("AE", "MSH", 18)
    assert parse(raw, default_charset="latin-1").get("PID-5-1") == "MÜLLER"
    assert parse(raw, fallback_charset="latin-1").get("PID-5-1") == "MÜLLER"


def test_ascii_charset() -> None:
    raw = b"MSH|^~\\&|A||B||20240101||ADT^A08|1|P|2.5||||||ASCII\rPID|1||X||DOE^JOHN\r"
    msg = parse(raw)
    assert msg.charset == "ascii" and msg.get("PID-5-2") == "JOHN"


def test_unknown_charset_is_ar() -> None:
    raw = load("orm_o01_v25.hl7").replace(b"UNICODE UTF-8", b"KLINGON")
    with pytest.raises(HL7Error) as err:
        parse(raw)
    assert (err.value.code, err.value.segment, err.value.field_position) == ("AR", "MSH", 18)


def test_unescape_sequences() -> None:
    d = DEFAULT_DELIMITERS
    assert unescape(r"a\F\b\S\c\T\d\R\e\E\f", d) == "a|b^c&d~e\\f"
    assert unescape(r"x\X0D0A\y", d) == "x\r\ny"
    assert unescape("\\XC3A9\\", d) == "é"
    assert unescape(r"line\.br\two", d) == "line\ntwo"
    assert unescape("\\H\\bold\\N\\", d) == "bold"
    kept = r"keep \Zfoo\ and \Q\ and trailing\ x"
    assert unescape(kept, d) == kept
    assert unescape(r"bad \XZZ\ hex", d) == r"bad \XZZ\ hex"


def test_escape_round_trip() -> None:
    text = "https://pacs/viewer?a=1&b=2^3|4~5\\6\r7"
    esc = escape(text, DEFAULT_DELIMITERS)
    assert not any(c in esc for c in "|^~&\r")
    assert unescape(esc, DEFAULT_DELIMITERS) == text


def test_escaped_field_value() -> None:
    msg = parse(load("adt_a08.hl7"))
    assert msg.get("PID-11-1") == "12|14 Trần Hưng Đạo"
    assert msg.segment("PID") is not None
    assert "\\F\\" in msg.segment("PID").raw(11)  # type: ignore[union-attr]


def test_hl7_null_is_visible() -> None:
    raw = b'MSH|^~\\&|A||B||20240101||ADT^A08|1|P|2.5\rPID|1||X||""\r'
    msg = parse(raw)
    assert is_null(msg.get("PID-5"))


def test_encode_round_trip() -> None:
    raw = load("orm_o01_v25.hl7")
    assert parse(raw).encode().encode("utf-8") == raw


# ---- structural errors -------------------------------------------------------------


def err_of(raw: bytes) -> HL7Error:
    with pytest.raises(HL7Error) as info:
        parse(raw)
    return info.value


@pytest.mark.parametrize(
    "raw",
    [b"", b"hello world", b"PID|1||X\r", b"\r\n  ", b"MS"],
)
def test_no_msh_is_ar(raw: bytes) -> None:
    err = err_of(raw)
    assert err.code == "AR" and err.segment == "MSH"


@pytest.mark.parametrize("sep", [b"A", b"1", b" ", b"\r", b"\xc3"])
def test_bad_field_separator_is_ar(sep: bytes) -> None:
    raw = b"MSH" + sep + b"^~\\&" + sep + b"A" + sep + b"B\rPID" + sep + b"1\r"
    err = err_of(raw)
    assert (err.code, err.segment, err.field_position) == ("AR", "MSH", 1)


@pytest.mark.parametrize("enc", [b"^~", b"^^\\&", b"^~|&", b"abcd", b""])
def test_bad_encoding_characters_is_ar(enc: bytes) -> None:
    err = err_of(b"MSH|" + enc + b"|A|B|C|D|20240101||ORM^O01|1|P|2.5\r")
    assert (err.code, err.segment, err.field_position) == ("AR", "MSH", 2)


@pytest.mark.parametrize("version", [b"2.2", b"2.6", b"3.0", b""])
def test_unsupported_version_is_ar(version: bytes) -> None:
    raw = load("orm_o01_v25.hl7").replace(b"|P|2.5|", b"|P|" + version + b"|")
    err = err_of(raw)
    assert (err.code, err.segment, err.field_position, err.hl7_code) == ("AR", "MSH", 12, 203)


def test_versions_none_accepts_any() -> None:
    raw = load("orm_o01_v25.hl7").replace(b"|P|2.5|", b"|P|2.8|")
    assert parse(raw, versions=None).version == "2.8"


def test_missing_message_type_is_ar() -> None:
    err = err_of(b"MSH|^~\\&|A|B|C|D|20240101|||1|P|2.5\r")
    assert (err.code, err.field_position) == ("AR", 9)


def test_missing_control_id_is_ae() -> None:
    err = err_of(b"MSH|^~\\&|A|B|C|D|20240101||ORM^O01||P|2.5\r")
    assert (err.code, err.segment, err.field_position) == ("AE", "MSH", 10)


def test_truncated_inside_msh_is_rejected() -> None:
    err = err_of(load("orm_o01_v25.hl7")[:40])
    assert err.code in ("AE", "AR") and err.segment == "MSH"


def test_invalid_segment_id_is_ae() -> None:
    err = err_of(load("orm_o01_v25.hl7") + b"pid|junk\r")
    assert err.code == "AE" and err.hl7_code == 100


def test_second_msh_is_ae() -> None:
    raw = load("orm_o01_v25.hl7")
    assert err_of(raw + raw).code == "AE"


def test_leading_whitespace_and_bom_tolerated() -> None:
    msg = parse(b"\xef\xbb\xbf\r\n" + load("orm_o01_v25.hl7"))
    assert msg.control_id == "MSG0002"


def test_parse_header_salvages_garbage() -> None:
    broken = b"xx MSH|^~\\&|HIS|BV|RIS|BV|20240101||ORM^O01|C42|P|2.9\rgarbage"
    msg = parse_header(broken)
    assert msg is not None and msg.control_id == "C42" and msg.sending_application == "HIS"
    assert parse_header(b"no header at all") is None
    assert parse_header(b"MSHA^~\\&|x") is None
