"""Full path with real processes (SQLite and PostgreSQL): HL7 order over MLLP -> CT study
by dcmtk storescu -> study stable -> cost job -> cost record matching the hand-computed
figure -> XLSX read back with openpyxl and XML3 parsed back, with equal values.
(Forwarding to Orthanc is exercised by the forwarding tests; no PACS is configured here.)
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from gateway.cli import main
from tests.fixtures.orders.helpers import ack_code, orm, send_all
from tests.support.costing import CT_2024_FULL_COST
from tests.support.ctgen import make_ct_study
from tests.support.dcmtk import storescu
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


def test_order_study_cost_report(gateway_factory: type, tmp_path: Path) -> None:
    gw = gateway_factory.make(
        {
            "costing": {  # scalars first: the test TOML writer puts tables last
                "default_department": "K-CDHA",
                "procedure_map": {"CT-BUNG-CQ": "18.0220.0041"},
                "machine_by_station": {"CT_ROOM_1": "CT01"},
            }
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

    xml = httpx.get(
        f"{gw.api}/api/reports/costs", params={**period, "format": "xml3"}, headers=gw.headers
    )
    [item] = ET.fromstring(xml.content).findall("./DSACH_CHI_TIET_DVKT/CHI_TIET_DVKT")
    assert item.findtext("MA_LK") == "E2E1" and item.findtext("MA_MAY") == "CT01"
    assert int(item.findtext("THANH_TIEN_BH") or 0) == got["DON_GIA_BH"]
    assert item.findtext("NGAY_TH_YL") == "202503101010"
    xml2 = httpx.get(
        f"{gw.api}/api/reports/costs", params={**period, "format": "xml2"}, headers=gw.headers
    )
    [drug] = ET.fromstring(xml2.content).findall("./DSACH_CHI_TIET_THUOC/CHI_TIET_THUOC")
    assert drug.findtext("THANH_TIEN_BV") == str(rec["separately_billed"])
