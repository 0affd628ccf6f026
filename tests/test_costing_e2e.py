"""Full path with real processes (SQLite and PostgreSQL): HL7 order over MLLP -> CT study
by dcmtk storescu -> study stable -> cost job -> cost record matching the hand-computed
figure -> XLSX read back with openpyxl and XML3 parsed back, with equal values.

The second test orders as Vietnamese HIS do (OBR-4 = MoH service code^name^99BYT),
forwards to a real Orthanc, imports the (illustrative) film/PACS fixture catalogue only
after the studies arrived, and checks every figure, computed by hand, to the dong:
film and PACS prices with their decisions, a "no film printed" staff statement, and
TYLE_TT_DV = 50 carried to the XML3 export.
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import httpx
import pydicom
import pytest
from click.testing import CliRunner
from lxml import etree
from openpyxl import load_workbook

from gateway.cli import main
from gateway.operations.local_orthanc import LocalOrthanc
from pricing_norms.claims import XML3_COLUMNS
from pricing_norms.claims_schema import SCHEMA_PATH
from tests.fixtures.orders.helpers import ack_code, orm, send_all
from tests.support.costing import CT_2024_FULL_COST
from tests.support.ctgen import make_ct_study
from tests.support.dcmtk import storescu
from tests.support.destination import destination_for, patient_id_in_orthanc
from tests.support.gateway_proc import GatewayProcess
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


def test_order_study_cost_report(gateway_factory: type, tmp_path: Path) -> None:
    gw = gateway_factory.make(
        {
            "costing": {  # scalars first: the test TOML writer puts tables last
                "default_department": "K-CDHA",
                "procedure_map": {"CT-BUNG-CQ": "18.0220.0041"},
                "machine_by_station": {"CT_ROOM_1": "CT01"},
            },
            "billing": {
                "machines": [
                    {"machine": "CT01", "ma_may": "CL.1.01001.1", "valid_from": "2024-01-01"}
                ]
            },
        }
    )
    r = CliRunner().invoke(main, ["--config", str(gw.config_path), "norms", "import", "--example"])
    assert r.exit_code == 0, r.output
    gw.start()
    ack = send_all(
        gw.hl7_port,
        [
            orm("C1", patient_id="BN1", name="NGUYỄN^VĂN AN", placer="PLC1", accession="E2E1",
                start="20250310090000",
                procedure="CT-BUNG-CQ^CT bụng-tiểu khung có thuốc cản quang^LOCAL")
        ],
    )  # fmt: skip
    assert ack_code(ack[0]) == "AA"
    uid, files = make_ct_study(
        tmp_path / "ct", 3, size=64, accession="E2E1", study_date="20250310", station="CT_ROOM_1"
    )
    assert storescu(gw.dicom_port, files).returncode == 0

    revisions = wait_until(lambda: gw.get(f"/api/costs/{uid}")["revisions"], 60, "a cost record")
    [rec] = revisions
    assert (rec["service_code"], rec["machine_code"], rec["department"]) == (
        "18.0220.0041", "CT01", "K-CDHA",
    )  # fmt: skip
    assert rec["full_cost"] == CT_2024_FULL_COST and rec["separately_billed"] == 450_000
    assert "procedure code" in rec["mapping"] and rec["created_by"] == "system:worker"

    period = {"from": "2025-03-01", "to": "2025-03-31"}
    xlsx = httpx.get(
        f"{gw.api}/api/reports/costs", params={**period, "format": "xlsx"}, headers=gw.headers
    )
    assert xlsx.status_code == 200
    rows = list(load_workbook(io.BytesIO(xlsx.content))["costs"].iter_rows(values_only=True))
    header, [row] = rows[1], rows[2:]
    got = dict(zip(header, row, strict=True))
    assert got["study_key"] == uid and got["MA_DICH_VU"] == "18.0220.0041"
    assert got["full_cost"] == CT_2024_FULL_COST and got["DON_GIA_BH"] == 663_400
    assert got["margin_BH"] == 663_400 - CT_2024_FULL_COST and got["MA_MAY"] == "CT01"

    url = f"{gw.api}/api/reports/costs"
    refused = httpx.get(url, params={**period, "format": "xml3"}, headers=gw.headers)
    assert refused.status_code == 409  # the example catalogue is ILLUSTRATIVE
    claims = {**period, "allow_illustrative": "true"}
    xml = httpx.get(url, params={**claims, "format": "xml3"}, headers=gw.headers)
    [item] = ET.fromstring(xml.content).findall("./DSACH_CHI_TIET_DVKT/CHI_TIET_DVKT")
    assert item.findtext("MA_LK") == "E2E1" and item.findtext("MA_MAY") == "CL.1.01001.1"
    assert int(item.findtext("THANH_TIEN_BH") or 0) == got["DON_GIA_BH"]
    assert item.findtext("NGAY_TH_YL") == "202503101010"
    xml2 = httpx.get(url, params={**claims, "format": "xml2"}, headers=gw.headers)
    [drug] = ET.fromstring(xml2.content).findall("./DSACH_CHI_TIET_THUOC/CHI_TIET_THUOC")
    assert drug.findtext("THANH_TIEN_BV") == str(rec["separately_billed"])


# -- Vietnamese orders: OBR-4 is the MoH service code (code^name^99BYT) ----------------

FILM_PACS = Path(__file__).parent / "fixtures" / "pricing" / "film_pacs"  # ILLUSTRATIVE
DAY = "20260310"  # after the (illustrative) PACS prices start on 2026-02-01
BS, KTV, DD = Decimal("737.90"), Decimal("591.65"), Decimal("518.52")  # VND/min, fixture
SOP_CLASS = {"MR": "1.2.840.10008.5.1.4.1.1.4", "DX": "1.2.840.10008.5.1.4.1.1.1.1"}


def _dong(amount: Decimal) -> int:
    """Half-up to the dong, the costing's one rounding rule."""
    return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP))


# Hand-computed from tests/fixtures/pricing/film_pacs (norm lines, staff rates, machines).
# CT head no contrast on CT01 (12e9 / (10 y x 200,000 min) = 6,000 VND/min), with film:
CT_HEAD_FULL = (
    30_000 + 3_000  # VAT_TU: 1 film 35x43 + 1 pair of gloves
    + _dong(10 * KTV) + _dong(10 * BS)  # NHAN_CONG: 5,917 + 7,379
    + 10 * 6_000  # KHAU_HAO: 10 CT minutes
    + 20_000 + 2 * 3_000 + 15_000  # DUY_TU, NANG_LUONG 2 kWh, CNTT
)  # fmt: skip
# MRI brain with contrast on MR01 (30e9 / (10 x 150,000) = 20,000 VND/min), with film;
# the 10 ml of gadolinium the images record are billed separately (XML2), 25,000/ml:
MR_FULL = (
    30_000 + 2 * 3_000 + 5_000 + 10_000  # VAT_TU: film, 2 gloves, syringe, cannula
    + _dong(30 * KTV) + _dong(10 * DD) + _dong(25 * BS)  # 17,750 + 5,185 + 18,448
    + 40 * 20_000  # KHAU_HAO: 40 MR minutes
    + 50_000 + 18 * 3_000 + 20_000 + 15_000  # DUY_TU, NANG_LUONG, QUAN_LY, CNTT
)  # fmt: skip
MR_CONTRAST = 10 * 25_000
# Chest X-ray on DX01 (3e9 / (10 x 15,000 uses) = 20,000 VND/use):
DX_FILMLESS_FULL = (
    3_000  # VAT_TU: gloves (the film line goes with a filmless study)
    + _dong(5 * KTV) + _dong(5 * BS)  # 2,958 + 3,690
    + 20_000 + _dong(Decimal("0.2") * 3_000) + 15_000  # KHAU_HAO, NANG_LUONG, CNTT
)  # fmt: skip
DX_FILM_FULL = DX_FILMLESS_FULL + 30_000  # one film 35x43


def _study(
    tmp: Path, accession: str, modality: str, station: str, **tags: str
) -> tuple[str, list[Path]]:
    """A small study of ``modality`` (CT files from ctgen, re-labelled for MR/DX)."""
    uid, files = make_ct_study(
        tmp / accession, 2, size=32, accession=accession, study_date=DAY, station=station,
        patient_id=f"BN-{accession}", patient_name="TRẦN^THỊ BÌNH",
    )  # fmt: skip
    for path in files:
        ds = pydicom.dcmread(path)
        if modality != "CT":
            ds.Modality = modality
            ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = SOP_CLASS[modality]
        for keyword, value in tags.items():
            setattr(ds, keyword, value)
        ds.save_as(path, enforce_file_format=True)
    return uid, files


def _latest(gw: GatewayProcess, uid: str) -> dict | None:
    revisions = gw.get(f"/api/costs/{uid}")["revisions"]
    return revisions[0] if revisions else None


def test_vietnamese_orders_costed_after_catalogue_import_film_and_pacs(
    gateway_factory: type, orthanc: LocalOrthanc, tmp_path: Path
) -> None:
    gw = gateway_factory.make(
        {
            "costing": {"use_example_mapping": True, "default_department": "K-CDHA"},
            "forward": {"destinations": [destination_for(orthanc)]},
        }
    )
    gw.start()  # no catalogue yet: the studies arrive first
    orders = {  # accession: (OBR-4 as the HIS sends it, OBR-24, station)
        "VN1": ("18.0149.0040^CT sọ não 1-32 dãy không tiêm thuốc cản quang^99BYT", "CT", "CT_32"),
        "VN2": ("18.0297.0065^Chụp MRI sọ não có tiêm thuốc đối quang từ^99BYT", "MR", "MR_15T"),
        "VN3": ("18.0119.0028^Chụp X-quang ngực thẳng số hóa 1 phim^99BYT", "DX", "DX_ROOM1"),
        "VN4": (" 18.0119.0028 ^Chụp X-quang ngực thẳng số hóa 1 phim^BYT", "DX", "DX_ROOM1"),
    }
    acks = send_all(
        gw.hl7_port,
        [
            orm(f"V{n}", patient_id=f"BN-{acc}", name="TRẦN^THỊ BÌNH", placer=f"P{acc}",
                accession=acc, start=f"{DAY}090000", modality=modality, procedure=obr4)
            for n, (acc, (obr4, modality, _)) in enumerate(orders.items())
        ],
    )  # fmt: skip
    assert [ack_code(a) for a in acks] == ["AA"] * 4
    uids: dict[str, str] = {}
    for acc, (_, modality, station) in orders.items():
        extra = {"ContrastBolusAgent": "Gadoterate", "ContrastBolusVolume": "10"}
        uid, files = _study(tmp_path, acc, modality, station, **(extra if acc == "VN2" else {}))
        assert storescu(gw.dicom_port, files).returncode == 0
        uids[acc] = uid

    # Matched, corrected (patient data from the order) and forwarded to the PACS...
    for acc, uid in uids.items():
        wait_until(
            lambda u=uid: patient_id_in_orthanc(orthanc, u) is not None, 60, f"{acc} in PACS"
        )

    # ...but not costed: no catalogue yet.
    def uncosted() -> dict[str, str]:
        return {i["study_uid"]: i["kind"] for i in gw.get("/api/costs/unmapped")["items"]}

    wait_until(lambda: len(uncosted()) == 4, 60, "4 uncosted studies")
    assert set(uncosted().values()) == {"NO_CATALOGUE"}

    # The catalogue arrives: no recost by hand, the cost_retry jobs cost every study.
    upload = [
        ("files", (p.name, p.read_bytes(), "text/csv")) for p in sorted(FILM_PACS.glob("*.csv"))
    ]
    r = httpx.post(f"{gw.api}/api/norms/import", files=upload, headers=gw.headers, timeout=60)
    assert r.status_code == 201, r.text
    assert r.json()["requeued"] == 4
    wait_until(lambda: all(_latest(gw, u) for u in uids.values()), 60, "4 costed studies")
    assert uncosted() == {}

    ct, mr, dx_film, dx = (_latest(gw, uids[a]) for a in ("VN1", "VN2", "VN3", "VN4"))
    assert ct and mr and dx_film and dx
    assert (ct["service_code"], ct["machine_code"], ct["full_cost"]) == (
        "18.0149.0040",
        "CT01",
        CT_HEAD_FULL,
    )
    assert CT_HEAD_FULL == 147_296 and ct["price_bv"] == 550_100 and ct["price_variant"] == "FILM"
    assert "service of the catalogue" in ct["mapping"] and ct["reason"].startswith("costed again")
    assert (mr["service_code"], mr["machine_code"], mr["full_cost"]) == (
        "18.0297.0065",
        "MR01",
        MR_FULL,
    )
    assert MR_FULL == 1_031_383 and mr["separately_billed"] == MR_CONTRAST
    assert mr["price_bv"] == 2_250_800 and mr["price_variant"] == ""  # one price, any delivery
    for rec in (dx_film, dx):
        assert (rec["service_code"], rec["machine_code"]) == ("18.0119.0028", "DX01")
        assert (rec["full_cost"], rec["price_bv"], rec["price_variant"]) == (
            DX_FILM_FULL,
            73_300,
            "FILM",
        )
        assert rec["record"]["price_decision_number"] == "1234/QĐ-BV"
    assert DX_FILM_FULL == 75_248

    # Billing staff: VN4's result went out without film (a radiologist may not say so).
    radiologist = {"Authorization": f"Bearer {gw.user_token('bs-an', 'radiologist')}"}
    no_film = {"filmless": True, "reason": "kết quả trả qua PACS, không in phim"}
    url = f"{gw.api}/api/costs/{uids['VN4']}/inputs"
    assert httpx.post(url, json=no_film, headers=radiologist, timeout=30).status_code == 403
    billing = {"Authorization": f"Bearer {gw.user_token('kt-binh', 'billing')}"}
    r = httpx.post(url, json=no_film, headers=billing, timeout=30)
    assert r.status_code == 200, r.text
    cost = r.json()["cost"]
    assert (cost["revision"], cost["delivery"], cost["price_variant"]) == (2, "filmless", "PACS")
    assert (cost["full_cost"], cost["price_bv"], cost["price_bh"]) == (
        DX_FILMLESS_FULL,
        59_700,
        59_700,
    )
    assert DX_FILMLESS_FULL == 45_248 and cost["created_by"] == "kt-binh"
    document = cost["record"]
    assert (document["price_decision_number"], document["price_decision_date"]) == (
        "313/QĐ-BYT",
        "2026-01-29",
    )
    assert document["delivery_source"] == "staff"
    assert "VT-PHIM-3543" not in {line["item_code"] for line in document["lines"]}
    audit = httpx.get(f"{gw.api}/api/audit", params={"action": "change.cost_inputs"},
                      headers=gw.headers, timeout=30).json()  # fmt: skip
    assert any(item["user"] == "kt-binh" for item in audit["items"])

    # The MRI is paid at 50% of the service price (TYLE_TT_DV) for this patient.
    r = httpx.post(f"{gw.api}/api/costs/{uids['VN2']}/inputs", headers=billing, timeout=30,
                   json={"tyle_tt_dv": 50, "reason": "thanh toán 50% theo quy định"})  # fmt: skip
    assert r.status_code == 200 and r.json()["cost"]["tyle_tt_dv"] == 50

    period = {"from": "2026-03-01", "to": "2026-03-31", "format": "xml3"}
    refused = httpx.get(f"{gw.api}/api/reports/costs", params=period, headers=gw.headers,
                        timeout=60)  # fmt: skip
    assert refused.status_code == 409 and "illustrative" in refused.text.lower()
    xml = httpx.get(
        f"{gw.api}/api/reports/costs",
        params={**period, "allow_illustrative": "true"},
        headers=gw.headers,
        timeout=60,
    )
    assert xml.status_code == 200
    # Validated here by libxml2 against the schema file itself, columns in the table's order.
    etree.XMLSchema(etree.parse(str(SCHEMA_PATH))).assertValid(etree.fromstring(xml.content))
    items = list(ET.fromstring(xml.content).iter("CHI_TIET_DVKT"))
    assert items and all([child.tag for child in item] == list(XML3_COLUMNS) for item in items)
    rows = {item.findtext("MA_LK"): item for item in items}
    expected = {  # MA_LK: (MA_DICH_VU, DON_GIA_BV, TYLE_TT_DV, THANH_TIEN_BV = 1 x price x rate)
        "VN1": ("18.0149.0040", 550_100, 100, 550_100),
        "VN2": ("18.0297.0065", 2_250_800, 50, 2_250_800 * 50 // 100),
        "VN3": ("18.0119.0028", 73_300, 100, 73_300),
        "VN4": ("18.0119.0028", 59_700, 100, 59_700),
    }
    assert set(rows) == set(expected)
    for ma_lk, (code, price, rate, amount) in expected.items():
        item = rows[ma_lk]
        got = (item.findtext("MA_DICH_VU"), int(item.findtext("DON_GIA_BV") or -1),
               int(item.findtext("TYLE_TT_DV") or -1), int(item.findtext("THANH_TIEN_BV") or -1),
               int(item.findtext("THANH_TIEN_BH") or -1))  # fmt: skip
        assert got == (code, price, rate, amount, amount), ma_lk  # TYLE_TT_BH 100
    assert int(rows["VN2"].findtext("THANH_TIEN_BV") or 0) == 1_125_400
