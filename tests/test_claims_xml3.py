"""XML3 rows as Decision 130 reads after 4750/3176/1931: hand-computed amounts (TYLE_TT_DV 50,
TYLE_TT_BH 80, a half-dong rounding), only billable rows, the 47 elements in order, the
XML Schema accepting a good file and rejecting bad ones, dated MA_MAY master data."""

from __future__ import annotations

import io
from datetime import date, datetime
from decimal import Decimal

import pytest
from lxml import etree

from pricing_norms.catalogue import Component
from pricing_norms.claims import XML3_COLUMNS, ClaimContext, xml2_rows, xml3_rows
from pricing_norms.claims_schema import ClaimValidationError, validate_document
from pricing_norms.costing import CostLine, CostRecord, cost_study
from pricing_norms.example import load_example_catalogue
from pricing_norms.exporters import XML_CHUNK_ROWS, write_xml130
from pricing_norms.machines import MachineCode, MachineCodes
from pricing_norms.mapping import StudyFacts

pytestmark = pytest.mark.unit

CT = "18.0220.0041"
DX = "18.0119.0028"
WHEN = datetime(2025, 6, 2, 8, 5)

# docs/domain.md, "Insurance claim export": the 47 elements of XML3 in their order
DOMAIN_XML3 = """MA_LK, STT, MA_DICH_VU, MA_PTTT_QT, MA_VAT_TU, MA_NHOM
(2 = imaging), GOI_VTYT, TEN_VAT_TU, TEN_DICH_VU, MA_XANG_DAU, DON_VI_TINH, PHAM_VI,
SO_LUONG, DON_GIA_BV, DON_GIA_BH, TT_THAU, TYLE_TT_DV, TYLE_TT_BH, THANH_TIEN_BV,
THANH_TIEN_BH, T_TRANTT, MUC_HUONG, T_NGUONKHAC_NSNN, T_NGUONKHAC_VTNN, T_NGUONKHAC_VTTN,
T_NGUONKHAC_CL, T_NGUONKHAC, T_BNTT, T_BNCCT, T_BHTT, MA_KHOA, MA_GIUONG, MA_BAC_SI,
NGUOI_THUC_HIEN, MA_BENH, MA_BENH_YHCT, NGAY_YL, NGAY_TH_YL, NGAY_KQ, MA_PTTT,
VET_THUONG_TP, PP_VO_CAM, VI_TRI_TH_DVKT, MA_MAY, MA_HIEU_SP, TAI_SU_DUNG, DU_PHONG."""


def _record(service: str, machine: str, **facts: object) -> CostRecord:
    modality = "CT" if service == CT else "DX"
    study = StudyFacts(date(2025, 6, 2), modality, department="K02", **facts)  # type: ignore[arg-type]
    return cost_study(load_example_catalogue(), service, study, machine)


def _with_supply(record: CostRecord) -> CostRecord:
    """The CT record plus a guide wire billed outside the service price (12,500.5 VND)."""
    wire = CostLine(
        Component.VAT_TU, "VT-DAY-DAN", "Dây dẫn", "cái", Decimal(1), Decimal(1),
        Decimal("12500.5"), 12501, True, "norm",
    )  # fmt: skip
    return CostRecord.from_dict({**record.to_dict(), "lines": [
        *(line.to_dict() for line in record.lines), wire.to_dict()]})  # fmt: skip


def test_element_order_is_the_47_of_the_table() -> None:
    names = [part.split("(")[0].strip() for part in DOMAIN_XML3.rstrip(".").split(",")]
    assert len(XML3_COLUMNS) == 47
    assert list(XML3_COLUMNS) == names
    xsd = etree.parse("pricing_norms/data/claims_130.xsd")
    ns = {"xs": "http://www.w3.org/2001/XMLSchema"}
    row = xsd.find(".//xs:element[@name='CHI_TIET_DVKT']", ns)
    assert row is not None
    assert [e.get("name") for e in row.iterfind(".//xs:element", ns)] == list(XML3_COLUMNS)


def test_amounts_hand_computed_with_tyle_dv_50_and_bh_80() -> None:
    ct = _record(CT, "CT01")
    context = ClaimContext("LK1", WHEN, WHEN, tyle_tt_dv=50, tyle_tt_bh=80, muc_huong=80)
    [row] = xml3_rows(ct, context)
    assert (row["DON_GIA_BV"], row["DON_GIA_BH"]) == ("663400", "663400")
    # 1 x 663,400 x 50/100 = 331,700; 1 x 663,400 x 50/100 x 80/100 = 265,360
    assert (row["THANH_TIEN_BV"], row["THANH_TIEN_BH"]) == ("331700", "265360")
    assert (row["TYLE_TT_DV"], row["TYLE_TT_BH"]) == ("50", "80")
    # patient outside insurance 331,700 - 265,360; insurance 80 % of 265,360 = 212,288
    assert (row["T_BNTT"], row["T_BHTT"], row["T_BNCCT"]) == ("66340", "212288", "53072")
    assert row["MUC_HUONG"] == "80" and row["NGAY_TH_YL"] == "202506020805"


def test_rounding_half_up_to_the_dong_once() -> None:
    dx = _record(DX, "DX01")
    context = ClaimContext("LK1", WHEN, WHEN, so_luong=Decimal("1.5"), tyle_tt_dv=50,
                           tyle_tt_bh=95, muc_huong=95)  # fmt: skip
    [row] = xml3_rows(dx, context)
    # 1.5 x 73,300 x 0.5 = 54,975; x 0.95 = 52,226.25 -> 52,226
    assert (row["THANH_TIEN_BV"], row["THANH_TIEN_BH"]) == ("54975", "52226")
    # 95 % of 52,226 = 49,614.7 -> 49,615
    assert (row["T_BHTT"], row["T_BNCCT"]) == ("49615", "2611")
    context = ClaimContext("LK1", WHEN, WHEN, tyle_tt_dv=50, tyle_tt_bh=95)
    [row] = xml3_rows(dx, context)
    # 73,300 x 0.5 x 0.95 = 34,817.5 -> 34,818 (half up); MUC_HUONG unknown: left empty
    assert row["THANH_TIEN_BH"] == "34818"
    assert (row["MUC_HUONG"], row["T_BHTT"], row["T_BNCCT"]) == ("", "", "")


def test_only_billable_rows() -> None:
    ct = _with_supply(_record(CT, "CT01", contrast_volume_ml=Decimal(100)))
    internal = {line.item_code for line in ct.lines if not line.billed_separately}
    assert {"VT-PHIM-3543", "VT-GANG", "VT-KIT-BOM"} <= internal
    context = ClaimContext("LK1", WHEN, WHEN, tyle_tt_dv=50, tyle_tt_bh=80, ma_may="CL.1.01001.1")
    rows = xml3_rows(ct, context)
    assert [r["MA_VAT_TU"] for r in rows] == ["", "VT-DAY-DAN"]
    supply = rows[1]
    assert supply["MA_DICH_VU"] == CT and supply["MA_NHOM"] == "10"
    assert supply["TEN_VAT_TU"] == "Dây dẫn" and supply["TEN_DICH_VU"] == ""
    # 12,500.5 x 0.5 = 6,250.25 -> 6,250; x 0.8 = 5,000.2 -> 5,000
    assert (supply["THANH_TIEN_BV"], supply["THANH_TIEN_BH"]) == ("6250", "5000")
    assert rows[0]["MA_MAY"] == "CL.1.01001.1" and supply["MA_MAY"] == ""
    drugs = xml2_rows(ct, context)
    assert len(drugs) == 1 and drugs[0]["MA_DICH_VU"] == CT  # contrast stays in XML2


def _file(*contexts: ClaimContext) -> bytes:
    ct = _with_supply(_record(CT, "CT01", contrast_volume_ml=Decimal(100)))
    xml3 = io.BytesIO()
    write_xml130(((ct, c) for c in contexts), xml3, io.BytesIO())
    return xml3.getvalue()


def test_schema_accepts_a_good_file() -> None:
    good = ClaimContext("LK1", WHEN, WHEN, datetime(2025, 6, 2, 9, 30), muc_huong=100,
                        ma_may="CL.1.01001.1")  # fmt: skip
    document = _file(good, ClaimContext("LK2", WHEN, WHEN))
    validate_document(document, "XML3")
    assert etree.fromstring(document)[0][2].findtext("MA_LK") == "LK2"


def _mutated(element: str, value: str) -> bytes:
    root = etree.fromstring(_file(ClaimContext("LK1", WHEN, WHEN), ClaimContext("LK2", WHEN, WHEN)))
    row = root[0][2]
    node = row.find(element)
    assert node is not None
    node.text = value
    return etree.tostring(root)


@pytest.mark.parametrize(
    ("element", "value"),
    [
        ("MUC_HUONG", "10000"),  # 5 characters: 1931 allows 4
        ("MUC_HUONG", "8O"),  # a letter O, not a number
        ("NGAY_YL", "202513021200"),  # month 13
        ("NGAY_TH_YL", "2025-06-02 08:05"),
        ("MA_MAY", "CT01"),
        ("TYLE_TT_BH", "120"),
        ("THANH_TIEN_BH", "12,5"),
    ],
)
def test_schema_rejects_a_bad_file(element: str, value: str) -> None:
    with pytest.raises(ClaimValidationError) as caught:
        validate_document(_mutated(element, value), "XML3")
    assert (caught.value.row, caught.value.element) == (3, element)
    assert value not in str(caught.value)  # the value (maybe patient data) is never shown


def test_writer_refuses_a_bad_row_with_its_number() -> None:
    rows = [ClaimContext(f"LK{i}", WHEN, WHEN) for i in range(XML_CHUNK_ROWS + 3)]
    rows[XML_CHUNK_ROWS + 1] = ClaimContext("LKX", WHEN, WHEN, muc_huong=10000)
    with pytest.raises(ClaimValidationError) as caught:
        _file(*rows)
    # each context gives a service row and a supply row: the bad one is row 2 x (N+1) + 1
    assert caught.value.row == 2 * (XML_CHUNK_ROWS + 1) + 1
    assert caught.value.element == "MUC_HUONG"


def test_schema_rejects_elements_out_of_order() -> None:
    root = etree.fromstring(_file(ClaimContext("LK1", WHEN, WHEN)))
    row = root[0][0]
    row.insert(0, row[2])  # MA_DICH_VU before MA_LK
    with pytest.raises(ClaimValidationError) as caught:
        validate_document(etree.tostring(root), "XML3")
    assert caught.value.row == 1


def test_machine_codes_dated_and_validated() -> None:
    codes = MachineCodes([
        MachineCode("CT01", "CL.1.01001.1", date(2024, 1, 1), date(2025, 6, 30)),
        MachineCode("ct01", "CL.2.01001.1", date(2025, 7, 1)),
    ])  # fmt: skip
    assert codes.on("CT01", date(2025, 6, 30)) == "CL.1.01001.1"
    assert codes.on("CT01", date(2025, 7, 1)) == "CL.2.01001.1"
    assert codes.on("CT01", date(2023, 12, 31)) is None
    assert codes.on("MR01", date(2025, 7, 1)) is None and codes.on(None, date(2025, 7, 1)) is None
    with pytest.raises(ValueError, match=r"XX\.n\.YYYYY\.Z"):
        MachineCodes([MachineCode("CT01", "CL.4.01001.1", date(2024, 1, 1))])
    with pytest.raises(ValueError, match="overlap"):
        MachineCodes([
            MachineCode("CT01", "CL.1.01001.1", date(2024, 1, 1)),
            MachineCode("CT01", "CL.2.01001.1", date(2025, 7, 1)),
        ])  # fmt: skip
