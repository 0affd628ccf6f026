"""Report limits: an XLSX report longer than one Excel sheet is refused before anything is
written (the API answers 422 with the same message); grouped or CSV reports still go."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from gateway.core.database import Database
from gateway.core.models import Study
from gateway.costing import reports
from gateway.costing.recording import Mappers, record_cost
from gateway.costing.reports import ReportError, ReportQuery, parse_day, write_report
from tests.support.costing import add_study, import_example, make_service


def test_xlsx_longer_than_a_sheet_refused(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = make_service(database, tmp_path)
    import_example(database)
    mappers = Mappers.from_settings(service.settings.costing)
    for day in ("20250601", "20250602", "20250603"):
        uid = add_study(database, study_date=day)
        with database.write_session() as session:
            study = session.query(Study).filter_by(study_uid=uid).one()
            record_cost(session, study, mappers, reason="t", created_by="t")
    monkeypatch.setattr(reports, "XLSX_MAX_ROWS", 2)
    query = ReportQuery(parse_day("2025-06-01", "from"), parse_day("2025-06-30", "to"))
    out = io.BytesIO()
    with pytest.raises(ReportError, match="3 rows do not fit one Excel sheet"):
        write_report(database, query, "xlsx", out)
    assert out.getvalue() == b""
    assert write_report(database, query, "csv", io.BytesIO()) == 3
    grouped = ReportQuery(query.date_from, query.date_to, ("month",))
    assert write_report(database, grouped, "xlsx", io.BytesIO()) == 1
