"""Insurance-claim rows (Decision 130/QD-BYT) built from a cost record: XML3 and XML2.

XML3 (technical services) gets one row per costed study with the columns listed in
``docs/domain.md``. Separately billed drugs of the norm (the contrast agent, THUOC
lines with ``billed_separately``) become XML2 (drug) rows carrying the service's
MA_DICH_VU. Separately billed consumables (VAT_TU lines) are not exported yet
(no example needs them; XML3 supply rows would need MA_VAT_TU/TEN_VAT_TU). Rows are
``dict[str, str]`` of already formatted values; STT is left empty and numbered by the
writer (:func:`pricing_norms.exporters.write_xml130`).

Formulas (money rounded half-up to the dong, see :mod:`pricing_norms.money`):
``THANH_TIEN_BV = SO_LUONG x DON_GIA_BV x TYLE_TT_DV/100`` (Decision 4750/3176);
``THANH_TIEN_BH = SO_LUONG x DON_GIA_BH x TYLE_TT_DV/100 x TYLE_TT_BH/100``;
for XML2, ``THANH_TIEN_BV = SO_LUONG x DON_GIA`` and
``THANH_TIEN_BH = SO_LUONG x DON_GIA x TYLE_TT_BH/100``. Dates are ``yyyymmddHHMM``.
This is an XML3-*compatible* subset: columns outside the domain brief are not written;
check against the current BHXH specification before submission.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from fractions import Fraction

from pricing_norms.catalogue import Component
from pricing_norms.costing import CostRecord
from pricing_norms.money import decimal_text, round_vnd

__all__ = [
    "DRUG_MA_NHOM",
    "XML2_COLUMNS",
    "XML3_COLUMNS",
    "ClaimContext",
    "format_claim_datetime",
    "xml2_rows",
    "xml3_rows",
]

XML3_COLUMNS: tuple[str, ...] = (
    "MA_LK",
    "STT",
    "MA_DICH_VU",
    "MA_VAT_TU",
    "MA_NHOM",
    "TEN_DICH_VU",
    "DON_VI_TINH",
    "PHAM_VI",
    "SO_LUONG",
    "DON_GIA_BV",
    "DON_GIA_BH",
    "TYLE_TT_DV",
    "TYLE_TT_BH",
    "THANH_TIEN_BV",
    "THANH_TIEN_BH",
    "MA_KHOA",
    "MA_BAC_SI",
    "NGUOI_THUC_HIEN",
    "MA_BENH",
    "NGAY_YL",
    "NGAY_TH_YL",
    "NGAY_KQ",
    "MA_MAY",
)

XML2_COLUMNS: tuple[str, ...] = (
    "MA_LK",
    "STT",
    "MA_THUOC",
    "MA_NHOM",
    "TEN_THUOC",
    "DON_VI_TINH",
    "PHAM_VI",
    "SO_LUONG",
    "DON_GIA",
    "TYLE_TT_BH",
    "THANH_TIEN_BV",
    "THANH_TIEN_BH",
    "MA_KHOA",
    "MA_BAC_SI",
    "MA_DICH_VU",
    "MA_BENH",
    "NGAY_YL",
    "NGAY_TH_YL",
)

#: MA_NHOM written on XML2 contrast rows (4 = drug in the insurance list; verify locally).
DRUG_MA_NHOM = 4


def format_claim_datetime(value: datetime | None) -> str:
    """``yyyymmddHHMM`` or '' for None."""
    return "" if value is None else value.strftime("%Y%m%d%H%M")


@dataclass(frozen=True, slots=True)
class ClaimContext:
    """Claim data the cost record does not hold (from the order, visit and report)."""

    ma_lk: str
    ngay_yl: datetime
    ngay_th_yl: datetime
    ngay_kq: datetime | None = None
    ma_bac_si: str = ""
    nguoi_thuc_hien: str = ""
    ma_benh: str = ""
    ma_khoa: str | None = None
    pham_vi: int = 1
    so_luong: Decimal = Decimal(1)
    tyle_tt_dv: int | None = None  # None: the cost record's (set on the study, else 100)
    tyle_tt_bh: int = 100


def _amount(quantity: Decimal, unit_price: Decimal | int, *percents: int) -> int:
    """round_vnd(quantity x unit_price x each percent/100), with an exact integer fast path."""
    integral = quantity == quantity.to_integral_value() and isinstance(unit_price, int)
    if integral and all(p == 100 for p in percents):
        return int(quantity) * int(unit_price)
    exact = Fraction(quantity) * Fraction(unit_price)
    for percent in percents:
        exact *= Fraction(percent, 100)
    return round_vnd(exact)


def xml3_rows(record: CostRecord, context: ClaimContext) -> list[dict[str, str]]:
    """The XML3 row of the study's service (STT empty)."""
    tyle_tt_dv = record.tyle_tt_dv if context.tyle_tt_dv is None else context.tyle_tt_dv
    thanh_tien_bv = _amount(context.so_luong, record.price_bv, tyle_tt_dv)
    thanh_tien_bh = _amount(context.so_luong, record.price_bh, tyle_tt_dv, context.tyle_tt_bh)
    return [
        {
            "MA_LK": context.ma_lk,
            "STT": "",
            "MA_DICH_VU": record.service_code,
            "MA_VAT_TU": "",
            "MA_NHOM": str(record.ma_nhom),
            "TEN_DICH_VU": record.service_name,
            "DON_VI_TINH": record.service_unit,
            "PHAM_VI": str(context.pham_vi),
            "SO_LUONG": decimal_text(context.so_luong),
            "DON_GIA_BV": str(record.price_bv),
            "DON_GIA_BH": str(record.price_bh),
            "TYLE_TT_DV": str(tyle_tt_dv),
            "TYLE_TT_BH": str(context.tyle_tt_bh),
            "THANH_TIEN_BV": str(thanh_tien_bv),
            "THANH_TIEN_BH": str(thanh_tien_bh),
            "MA_KHOA": context.ma_khoa if context.ma_khoa is not None else record.department or "",
            "MA_BAC_SI": context.ma_bac_si,
            "NGUOI_THUC_HIEN": context.nguoi_thuc_hien,
            "MA_BENH": context.ma_benh,
            "NGAY_YL": format_claim_datetime(context.ngay_yl),
            "NGAY_TH_YL": format_claim_datetime(context.ngay_th_yl),
            "NGAY_KQ": format_claim_datetime(context.ngay_kq),
            "MA_MAY": record.machine_code or "",
        }
    ]


def xml2_rows(record: CostRecord, context: ClaimContext) -> list[dict[str, str]]:
    """XML2 rows for separately billed drugs (contrast agent), with the service's code."""
    rows: list[dict[str, str]] = []
    for line in record.lines:
        if not (line.billed_separately and line.component is Component.THUOC):
            continue
        if line.quantity == 0:
            continue
        amount_bh = _amount(line.quantity, line.unit_cost, context.tyle_tt_bh)
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
