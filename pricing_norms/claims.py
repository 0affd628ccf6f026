"""Insurance-claim rows (Decision 130/QĐ-BYT as amended by 4750, 3176 and 1931): XML3, XML2.

XML3 (technical services and medical supplies) has the 47 elements of :data:`XML3_COLUMNS`
in the order of the table (``docs/domain.md``; sources in ``docs/decisions.md``). Only
billable rows are written: the study's service, and the consumables (VAT_TU lines) the
norm bills *outside* the service price (``billed_separately``), which carry the
service's MA_DICH_VU. The norm's internal consumables (film, gloves, kits) are cost
components, never XML3 rows. Separately billed drugs (the contrast agent, THUOC lines
with ``billed_separately``) become XML2 rows with the service's MA_DICH_VU. Rows are
``dict[str, str]`` of formatted values; STT is left empty and numbered by the writer
(:func:`pricing_norms.exporters.write_xml130`).

Formulas (4750/3176), each computed exactly and rounded **once, half-up to the whole
dong** (:func:`pricing_norms.money.round_vnd`): no intermediate rounding, so a row's
amounts agree with the HIS's to the dong and totals are plain sums of the rows:

- ``THANH_TIEN_BV = SO_LUONG x DON_GIA_BV x TYLE_TT_DV/100``;
- ``THANH_TIEN_BH = SO_LUONG x DON_GIA_BH x TYLE_TT_DV/100 x TYLE_TT_BH/100``;
- ``T_BNTT = THANH_TIEN_BV - THANH_TIEN_BH`` (what the patient pays outside insurance);
- with MUC_HUONG known: ``T_BHTT = THANH_TIEN_BH x MUC_HUONG/100`` (rounded) and
  ``T_BNCCT = THANH_TIEN_BH - T_BHTT``; without it (the gateway does not receive the
  insurance card), MUC_HUONG, T_BHTT and T_BNCCT are left empty for the HIS to fill.

XML2: ``THANH_TIEN_BV = SO_LUONG x DON_GIA`` and
``THANH_TIEN_BH = SO_LUONG x DON_GIA x TYLE_TT_BH/100``. Dates are ``yyyymmddHHMM``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from fractions import Fraction

from pricing_norms.catalogue import Component
from pricing_norms.costing import CostRecord
from pricing_norms.money import decimal_text, round_vnd

__all__ = [
    "DRUG_MA_NHOM",
    "MA_MAY_RE",
    "SUPPLY_MA_NHOM",
    "XML2_COLUMNS",
    "XML3_COLUMNS",
    "ClaimContext",
    "claim_amount",
    "format_claim_datetime",
    "xml2_rows",
    "xml3_rows",
]

#: The 47 elements of XML3, in the order of the table (130 -> 4750 -> 3176 -> 1931).
XML3_COLUMNS: tuple[str, ...] = (
    "MA_LK", "STT", "MA_DICH_VU", "MA_PTTT_QT", "MA_VAT_TU", "MA_NHOM", "GOI_VTYT",
    "TEN_VAT_TU", "TEN_DICH_VU", "MA_XANG_DAU", "DON_VI_TINH", "PHAM_VI", "SO_LUONG",
    "DON_GIA_BV", "DON_GIA_BH", "TT_THAU", "TYLE_TT_DV", "TYLE_TT_BH", "THANH_TIEN_BV",
    "THANH_TIEN_BH", "T_TRANTT", "MUC_HUONG", "T_NGUONKHAC_NSNN", "T_NGUONKHAC_VTNN",
    "T_NGUONKHAC_VTTN", "T_NGUONKHAC_CL", "T_NGUONKHAC", "T_BNTT", "T_BNCCT", "T_BHTT",
    "MA_KHOA", "MA_GIUONG", "MA_BAC_SI", "NGUOI_THUC_HIEN", "MA_BENH", "MA_BENH_YHCT",
    "NGAY_YL", "NGAY_TH_YL", "NGAY_KQ", "MA_PTTT", "VET_THUONG_TP", "PP_VO_CAM",
    "VI_TRI_TH_DVKT", "MA_MAY", "MA_HIEU_SP", "TAI_SU_DUNG", "DU_PHONG",
)  # fmt: skip

#: XML2 (drugs): the subset the gateway fills for separately billed contrast agents.
XML2_COLUMNS: tuple[str, ...] = (
    "MA_LK", "STT", "MA_THUOC", "MA_NHOM", "TEN_THUOC", "DON_VI_TINH", "PHAM_VI",
    "SO_LUONG", "DON_GIA", "TYLE_TT_BH", "THANH_TIEN_BV", "THANH_TIEN_BH", "MA_KHOA",
    "MA_BAC_SI", "MA_DICH_VU", "MA_BENH", "NGAY_YL", "NGAY_TH_YL",
)  # fmt: skip

#: MA_NHOM of XML2 contrast rows (4 = drug in the insurance list; verify locally).
DRUG_MA_NHOM = 4
#: MA_NHOM of XML3 supply rows (10 = medical supply in the insurance list; verify locally).
SUPPLY_MA_NHOM = 10
#: MA_MAY: type letters (XQ, CL, MRI, SA...), funding source 1/2/3, facility code, serial.
MA_MAY_RE = re.compile(r"^[A-Z]{2,5}\.[123]\.[0-9A-Z]{5}\.[0-9]{1,6}$")


def format_claim_datetime(value: datetime | None) -> str:
    """``yyyymmddHHMM`` or '' for None."""
    return "" if value is None else value.strftime("%Y%m%d%H%M")


@dataclass(frozen=True, slots=True)
class ClaimContext:
    """Claim data the cost record does not hold (from the order, visit and master data).

    ``ma_may`` is the XML3 machine code in force on the study date (``None``: not known,
    written empty); ``muc_huong`` the patient's benefit level in percent (``None``: not
    known, left for the HIS).
    """

    ma_lk: str
    ngay_yl: datetime
    ngay_th_yl: datetime
    ngay_kq: datetime | None = None
    ma_bac_si: str = ""
    nguoi_thuc_hien: str = ""
    ma_benh: str = ""
    ma_khoa: str | None = None
    ma_may: str | None = None
    pham_vi: int = 1
    so_luong: Decimal = Decimal(1)
    tyle_tt_dv: int | None = None  # None: the cost record's (set on the study, else 100)
    tyle_tt_bh: int = 100
    muc_huong: int | None = None
    ma_pttt: int = 1


def claim_amount(quantity: Decimal, unit_price: Decimal | int, *percents: int) -> int:
    """round_vnd(quantity x unit_price x each percent/100), exact until the one rounding."""
    integral = quantity == quantity.to_integral_value() and isinstance(unit_price, int)
    if integral and all(p == 100 for p in percents):
        return int(quantity) * int(unit_price)
    exact = Fraction(quantity) * Fraction(unit_price)
    for percent in percents:
        exact *= Fraction(percent, 100)
    return round_vnd(exact)


def _payer_split(bv: int, bh: int, muc_huong: int | None) -> dict[str, str]:
    shares = {"T_BNTT": str(bv - bh), "MUC_HUONG": "", "T_BHTT": "", "T_BNCCT": ""}
    if muc_huong is not None:
        bhtt = claim_amount(Decimal(1), bh, muc_huong)
        shares.update(MUC_HUONG=str(muc_huong), T_BHTT=str(bhtt), T_BNCCT=str(bh - bhtt))
    return shares


def _xml3_row(
    context: ClaimContext,
    record: CostRecord,
    *,
    quantity: Decimal,
    price_bv: Decimal | int,
    price_bh: Decimal | int,
    unit: str,
    supply: tuple[str, str] | None,
) -> dict[str, str]:
    tyle_tt_dv = record.tyle_tt_dv if context.tyle_tt_dv is None else context.tyle_tt_dv
    bv = claim_amount(quantity, price_bv, tyle_tt_dv)
    bh = claim_amount(quantity, price_bh, tyle_tt_dv, context.tyle_tt_bh)
    money = (decimal_text(price_bv), decimal_text(price_bh))
    zero = "0"
    return {
        "MA_LK": context.ma_lk,
        "STT": "",
        "MA_DICH_VU": record.service_code,
        "MA_VAT_TU": supply[0] if supply else "",
        "MA_NHOM": str(SUPPLY_MA_NHOM if supply else record.ma_nhom),
        "TEN_VAT_TU": supply[1] if supply else "",
        "TEN_DICH_VU": "" if supply else record.service_name,
        "DON_VI_TINH": unit,
        "PHAM_VI": str(context.pham_vi),
        "SO_LUONG": decimal_text(quantity),
        "DON_GIA_BV": money[0],
        "DON_GIA_BH": money[1],
        "TYLE_TT_DV": str(tyle_tt_dv),
        "TYLE_TT_BH": str(context.tyle_tt_bh),
        "THANH_TIEN_BV": str(bv),
        "THANH_TIEN_BH": str(bh),
        **_payer_split(bv, bh, context.muc_huong),
        "T_NGUONKHAC_NSNN": zero,
        "T_NGUONKHAC_VTNN": zero,
        "T_NGUONKHAC_VTTN": zero,
        "T_NGUONKHAC_CL": zero,
        "T_NGUONKHAC": zero,
        "MA_KHOA": context.ma_khoa if context.ma_khoa is not None else record.department or "",
        "MA_BAC_SI": context.ma_bac_si,
        "NGUOI_THUC_HIEN": context.nguoi_thuc_hien,
        "MA_BENH": context.ma_benh,
        "NGAY_YL": format_claim_datetime(context.ngay_yl),
        "NGAY_TH_YL": format_claim_datetime(context.ngay_th_yl),
        "NGAY_KQ": format_claim_datetime(context.ngay_kq),
        "MA_PTTT": str(context.ma_pttt),
        "MA_MAY": "" if supply else context.ma_may or "",
    }


def xml3_rows(record: CostRecord, context: ClaimContext) -> list[dict[str, str]]:
    """The study's billable XML3 rows: its service, then supplies billed outside its price.

    Elements not listed in a row are written empty by the writer.
    """
    rows = [
        _xml3_row(
            context,
            record,
            quantity=context.so_luong,
            price_bv=record.price_bv,
            price_bh=record.price_bh,
            unit=record.service_unit,
            supply=None,
        )
    ]
    for line in record.lines:
        if line.billed_separately and line.component is Component.VAT_TU and line.quantity:
            rows.append(
                _xml3_row(
                    context,
                    record,
                    quantity=line.quantity,
                    price_bv=line.unit_cost,
                    price_bh=line.unit_cost,
                    unit=line.unit,
                    supply=(line.item_code, line.item_name),
                )
            )
    return rows


def xml2_rows(record: CostRecord, context: ClaimContext) -> list[dict[str, str]]:
    """XML2 rows for separately billed drugs (contrast agent), with the service's code."""
    rows: list[dict[str, str]] = []
    for line in record.lines:
        if not (line.billed_separately and line.component is Component.THUOC):
            continue
        if line.quantity == 0:
            continue
        amount_bh = claim_amount(line.quantity, line.unit_cost, context.tyle_tt_bh)
        rows.append(
            {
                "MA_LK": context.ma_lk,
                "STT": "",
                "MA_THUOC": line.item_code,
                "MA_NHOM": str(DRUG_MA_NHOM),
                "TEN_THUOC": line.item_name,
                "DON_VI_TINH": line.unit,
                "PHAM_VI": str(context.pham_vi),
                "SO_LUONG": decimal_text(line.quantity),
                "DON_GIA": decimal_text(line.unit_cost),
                "TYLE_TT_BH": str(context.tyle_tt_bh),
                "THANH_TIEN_BV": str(line.amount),
                "THANH_TIEN_BH": str(amount_bh),
                "MA_KHOA": (
                    context.ma_khoa if context.ma_khoa is not None else record.department or ""
                ),
                "MA_BAC_SI": context.ma_bac_si,
                "MA_DICH_VU": record.service_code,
                "MA_BENH": context.ma_benh,
                "NGAY_YL": format_claim_datetime(context.ngay_yl),
                "NGAY_TH_YL": format_claim_datetime(context.ngay_th_yl),
            }
        )
    return rows
