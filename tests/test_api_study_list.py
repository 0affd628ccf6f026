"""GET /api/studies on a database filled as bench/scale.py fills it (SQLite and
PostgreSQL): first page newest first, by patient, by date range; each summary's
instances, modalities and match come from the page's batched queries."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from bench.scale import fill
from gateway.core.database import Database
from tests.support.auth import authed_client
from tests.support.costing import make_service


def test_study_list_pages_and_filters(database: Database, db_url: str, tmp_path: Path) -> None:
    database.dispose()
    fill(db_url, studies=40, instances=400, orders=30)  # 10 instances, 2 series a study
    client = authed_client(make_service(database, tmp_path))

    first = client.get("/api/studies", params={"limit": 5}).json()
    assert first["total"] == 40 and len(first["items"]) == 5
    received = [item["last_received_at"] for item in first["items"]]
    assert received == sorted(received, reverse=True)
    newest = first["items"][0]
    assert newest["instances"] == 10 and newest["modalities"] == ["CT"]
    assert newest["match_state"] == "MATCHED" and newest["patient_id"] == "BN000000"

    by_patient = client.get("/api/studies", params={"patient_id": "BN000003"}).json()
    assert by_patient["total"] == 2  # studies 3 and 23 of 20 patients
    assert {item["patient_id"] for item in by_patient["items"]} == {"BN000003"}

    day = (date.today() - timedelta(days=9 * 365 // 40)).strftime("%Y%m%d")  # study 9
    by_date = client.get("/api/studies", params={"date_from": day, "date_to": day}).json()
    assert by_date["total"] >= 1 and all(i["study_date"] == day for i in by_date["items"])

    unmatched = client.get("/api/studies", params={"matched": "false"}).json()
    assert unmatched["total"] == 10  # studies 30-39 have no order
    assert all(item["match_reason"] == "no order found" for item in unmatched["items"])

    # Every filter at once, and the next page: a bound parameter each (upper-cased where
    # the stored values are), the order kept across pages.
    def uids(**params: str) -> set[str]:
        page = client.get("/api/studies", params={**params, "limit": "500"}).json()
        assert page["total"] == len(page["items"])
        return {item["study_uid"] for item in page["items"]}

    matched, ct = uids(matched="true"), uids(modality="ct")
    assert len(matched) == 30 and 0 < len(ct) < 40
    assert uids(matched="true", modality="ct") == matched & ct
    assert uids(state=newest["state"].lower()) == uids()  # the fill's studies share one
    assert uids(state="nosuch") == set()
    second = client.get("/api/studies", params={"limit": 5, "offset": 5}).json()
    assert second["total"] == 40
    assert [i["last_received_at"] for i in second["items"]] <= received[-1:] * 5
    assert not {i["study_uid"] for i in second["items"]} & {i["study_uid"] for i in first["items"]}
    # A list item is the study's own summary (GET /api/studies/{uid}), timestamps included.
    detail = client.get(f"/api/studies/{newest['study_uid']}").json()
    assert {k: detail[k] for k in newest} == newest


def test_total_of_all_studies_counts_a_new_study_at_once(
    database: Database, tmp_path: Path
) -> None:
    """The unfiltered total is counted at most once a second while no study is added
    (gateway.views.studies.count_all): a new study is in the next answer all the same."""
    from tests.support.costing import add_study

    client = authed_client(make_service(database, tmp_path))
    assert client.get("/api/studies").json()["total"] == 0
    for n in range(1, 4):
        uid = add_study(database, instances=2)
        page = client.get("/api/studies").json()
        assert page["total"] == n and page["items"][0]["study_uid"] == uid
        assert page["items"][0]["instances"] == 2 and page["items"][0]["match_state"] == ""
    assert client.get("/api/studies", params={"modality": "MR"}).json()["total"] == 0
