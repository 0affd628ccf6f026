"""The web UI in real headless Chromium (Debian's, driven by Playwright): each role logs in
and sees only its pages, thumbnails of a CT and a JPEG-compressed US study, linking an
unmatched study, a billing report download, and switching language. Screenshots go to
``test-artifacts/``."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pydicom
import pytest
from click.testing import CliRunner
from pydicom.data import get_testdata_file

from gateway.auth import policy
from gateway.cli import main
from gateway.web.routes import NAV
from pricing_norms.claims_schema import validate_document
from tests.fixtures.orders.helpers import ack_code, orm, send_all
from tests.support.ctgen import make_ct_study
from tests.support.dcmtk import PROPOSE_FLAG, storescu
from tests.support.gateway_proc import TEST_PASSWORD, GatewayProcess
from tests.support.tools import require
from tests.support.wait import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.integration]

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
ARTIFACTS = Path(__file__).parent.parent / "test-artifacts"
USERS = {"admin": "ui-admin", "radiologist": "ui-rad", "billing": "ui-bill"}
TODAY = date.today().strftime("%Y%m%d")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("web")
    gw = GatewayProcess(
        tmp / "gw",
        f"sqlite:///{tmp / 'web.db'}",
        {
            "costing": {
                "default_department": "K-CDHA",
                "procedure_map": {"CT-BUNG-CQ": "18.0220.0041"},
                "machine_by_station": {"CT_ROOM_1": "CT01"},
            },
            "ui": {"viewer_url": "http://viewer.test/viewer?study={study_uid}"},
        },
    )
    try:
        r = CliRunner().invoke(
            main, ["--config", str(gw.config_path), "norms", "import", "--example"]
        )
        assert r.exit_code == 0, r.output
        for role, name in USERS.items():
            gw.create_user(name, role)  # through `risgate users create`
        gw.start()
        orders = [
            orm("W1", patient_id="BN1", name="NGUYỄN^VĂN AN", placer="PLW1", accession="WEB1",
                start="20250310090000",
                procedure="CT-BUNG-CQ^CT bụng-tiểu khung có thuốc cản quang^LOCAL"),
            orm("W2", patient_id="BNUS1", name="LÊ^THỊ HOA", placer="PLW2", accession="WEBUS1",
                start=f"{TODAY}090000", modality="US"),
        ]  # fmt: skip
        assert [ack_code(a) for a in send_all(gw.hl7_port, orders)] == ["AA", "AA"]
        ct_uid, ct_files = make_ct_study(
            tmp / "ct", 3, size=64, accession="WEB1", patient_id="BN1",
            patient_name="NGUYỄN^VĂN AN", study_date="20250310", station="CT_ROOM_1",
        )  # fmt: skip
        assert storescu(gw.dicom_port, ct_files).returncode == 0
        us = pydicom.dcmread(get_testdata_file("examples_ybr_color.dcm"))
        us.PatientID, us.AccessionNumber = "BNUS1", "NOORDER9"
        us_path = tmp / "us.dcm"
        us.save_as(us_path)
        sent = storescu(
            gw.dicom_port, [us_path], extra=[PROPOSE_FLAG[str(us.file_meta.TransferSyntaxUID)]]
        )
        assert sent.returncode == 0, sent.stderr

        def rendered() -> bool:
            studies = gw.get("/api/studies")["items"]
            return len(studies) == 2 and all(s["state"] == "STABLE" for s in studies)

        wait_until(rendered, 40, "stable studies")
        wait_until(lambda: gw.get(f"/api/costs/{ct_uid}")["revisions"], 40, "cost record")
        ARTIFACTS.mkdir(exist_ok=True)
        yield {"gw": gw, "ct": ct_uid, "us": str(us.StudyInstanceUID),
               "us_series": str(us.SeriesInstanceUID)}  # fmt: skip
    finally:
        gw.kill()


@pytest.fixture(scope="module")
def browser(site: dict[str, Any]) -> Iterator[Any]:  # site first: it uses asyncio.run
    require(CHROMIUM)
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _login(browser: Any, site: dict[str, Any], role: str, lang: str = "en") -> Any:
    gw: GatewayProcess = site["gw"]
    context = browser.new_context(base_url=gw.api, accept_downloads=True)
    context.add_cookies([{"name": "risgate_lang", "value": lang, "url": gw.api}])
    page = context.new_page()
    page.goto("/ui/studies")  # not logged in: sent to the login page
    page.wait_for_url("**/login?next=/ui/studies")
    page.fill("#username", USERS[role])
    page.fill("#password", TEST_PASSWORD)
    page.click("#login-submit")
    page.wait_for_load_state()
    return page


def _expected_nav(role: str) -> list[str]:
    return [k for k, url in NAV if policy.allows(policy.rule_for("GET", url) or frozenset(), role)]


@pytest.mark.parametrize("role", ["admin", "radiologist", "billing"])
def test_each_role_sees_only_its_pages(browser: Any, site: dict[str, Any], role: str) -> None:
    page = _login(browser, site, role)
    assert page.locator("#whoami").inner_text() == f"{USERS[role]} ({role})"
    nav = page.locator("#nav a").evaluate_all("els => els.map(e => e.dataset.nav)")
    assert nav == _expected_nav(role)
    page.screenshot(path=str(ARTIFACTS / f"home-{role}.png"), full_page=True)
    for key, url in NAV:
        response = page.goto(url)
        assert response is not None
        if key in nav:
            assert response.status == 200, (role, url)
        else:
            assert response.status == 403, (role, url)
    if role == "billing":
        page.goto("/ui/hl7")
        text = page.locator("#hl7").inner_text()
        assert "ORM^O01" in text and "BNUS1" not in text and "NGUYỄN" not in text
    if role == "admin":  # a change through the UI: JSON form with the session's CSRF token
        page.goto("/ui/users")
        form = page.locator("#user-create")
        form.locator("input[name=name]").fill("ui-made")
        form.locator("select[name=role]").select_option("radiologist")
        form.locator("input[name=password]").fill("made-in-ui-1")
        form.locator("button").click()
        # The new row after the page reloads, or the error the page flashed instead.
        page.wait_for_selector("#users td:text-is('ui-made'), #flash:not(:empty)")
        assert page.locator("#flash").inner_text().strip() == ""
        assert page.locator("#users td:text-is('ui-made')").count() == 1
        made = site["gw"].get("/api/audit", action="change.user_create")["items"][0]
        got = (made["user"], made["object_id"], made["outcome"])
        assert got == (USERS["admin"], "ui-made", "ok")
    if role == "radiologist":
        page.goto("/ui/studies")
        assert "NGUYỄN^VĂN AN" in page.locator("#studies").inner_text()
        assert page.request.get("/api/audit").status == 403
    page.context.close()


def test_thumbnails_of_ct_and_compressed_us(browser: Any, site: dict[str, Any]) -> None:
    page = _login(browser, site, "radiologist")
    page.goto("/ui/studies")
    for uid in (site["ct"], site["us"]):
        img = page.locator(f'tr[data-study="{uid}"] img.thumb')
        img.first.wait_for()
        loaded = img.first.evaluate("i => i.complete && i.naturalWidth > 0 ? i.naturalWidth : 0")
        assert loaded > 0, uid
    row = page.locator(f'tr[data-study="{site["ct"]}"]')
    done = row.locator(".step.done").evaluate_all("els => els.map(e => e.dataset.step)")
    assert {"received", "matched", "costed"} <= set(done)
    page.screenshot(path=str(ARTIFACTS / "studies-thumbnails.png"), full_page=True)
    href = row.locator("a.viewer").get_attribute("href")
    opened = page.request.get(href, max_redirects=0)  # the browser's session cookie
    assert opened.status == 303
    assert opened.headers["location"] == f"http://viewer.test/viewer?study={site['ct']}"
    record = site["gw"].get("/api/audit", action="view.viewer")["items"][0]
    assert (record["user"], record["object_id"]) == (USERS["radiologist"], site["ct"])
    page.context.close()


def test_billing_lists_uncosted_studies_with_their_fixes(
    browser: Any, site: dict[str, Any]
) -> None:
    gw: GatewayProcess = site["gw"]
    wait_until(
        lambda: any(i["study_uid"] == site["us"] for i in gw.get("/api/costs/unmapped")["items"]),
        40,
        "the US study listed as not costed",
    )
    page = _login(browser, site, "billing")
    page.goto("/ui/billing?from=2025-03-01&to=2025-03-31")
    row = page.locator(f'#uncosted tr[data-study="{site["us"]}"]')
    row.wait_for()
    assert row.get_attribute("data-kind") == "UNMAPPED_SERVICE"
    assert "Service not mapped" in row.inner_text()
    # not matched to an order: link it first (the unmatched page does), then map and recost
    fixes = [li.get_attribute("class") for li in row.locator("ul.fixes > li").all()]
    assert fixes == ["fix_link_order", "fix_map_code", "fix_recost"]
    assert row.locator("li.fix_link_order a").get_attribute("href") == "/ui/unmatched"
    assert "costing.procedure_map" in row.locator("li.fix_map_code").inner_text()
    page.screenshot(path=str(ARTIFACTS / "billing-uncosted.png"), full_page=True)
    # recost through POST /api/costs/{uid}/recost: still unmapped, so 409 with the reason
    row.locator("form.recost input[name=reason]").fill("checked the mapping")
    row.locator("form.recost button").click()
    page.wait_for_function("document.getElementById('flash').textContent.startsWith('409')")
    assert "UNMAPPED_SERVICE" in page.locator("#flash").inner_text()
    audit = gw.get("/api/audit", action="change.recost")["items"][0]
    assert (audit["user"], audit["object_id"]) == (USERS["billing"], site["us"])
    page.context.close()


def test_link_unmatched_study(browser: Any, site: dict[str, Any]) -> None:
    page = _login(browser, site, "billing")
    page.goto("/ui/unmatched")
    row = page.locator(f'tr[data-study="{site["us"]}"]')
    row.wait_for()
    assert row.locator("img.thumb").count() == 1
    row.locator(".order-search input").fill("BNUS1")
    row.locator(".order-search button").click()
    hit = row.locator('.order-hit[data-accession="WEBUS1"]')
    hit.wait_for()
    hit.locator("button.link-order").click()
    page.wait_for_selector(f'tr[data-study="{site["us"]}"] .order-hit.linked')
    page.screenshot(path=str(ARTIFACTS / "unmatched-linked.png"), full_page=True)
    audit = site["gw"].get("/api/audit", action="change.link")
    assert audit["items"][0]["user"] == USERS["billing"]
    assert audit["items"][0]["object_id"] == site["us"]
    page.context.close()


def test_billing_report_and_download(browser: Any, site: dict[str, Any]) -> None:
    page = _login(browser, site, "billing", lang="vi")
    page.goto("/ui/billing?from=2025-03-01&to=2025-03-31")
    total = page.locator("#billing-total").inner_text()
    assert total.endswith(" ₫") and "." in total
    assert "MINH HỌA" in page.locator("#illustrative-note").inner_text()
    assert page.locator("#billing-chart svg rect").count() >= 1
    # totals by service are the sums of the rows, to the dong
    for column in (4, 5, 6):  # full cost, BH, BV
        by_row: dict[str, int] = {}
        for tr in page.locator("#billing-rows tbody tr[data-service]").all():
            cell = tr.locator(f"td:nth-child({column + 1})").get_attribute("data-vnd")
            service = tr.get_attribute("data-service") or ""
            by_row[service] = by_row.get(service, 0) + int(cell or 0)
        shown = {
            tr.get_attribute("data-service") or "": int(
                tr.locator(f"td:nth-child({column - 1})").get_attribute("data-vnd") or 0
            )
            for tr in page.locator("#billing-by-service tbody tr[data-service]").all()
        }
        assert shown == by_row and by_row
    grand = page.locator("#billing-grand td:nth-child(3)").get_attribute("data-vnd")
    assert int(grand or 0) == int(total.removesuffix(" ₫").replace(".", ""))
    page.screenshot(path=str(ARTIFACTS / "billing.png"), full_page=True)
    with page.expect_download() as info:
        page.click("#dl-csv")
    download = info.value
    assert download.suggested_filename == "costs_20250301_20250331.csv"
    note, _, text = Path(download.path()).read_text(encoding="utf-8-sig").partition("\n")
    assert "ILLUSTRATIVE" in note
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["study_key"] for r in rows] == [site["ct"]]
    with page.expect_download() as info:
        page.click("#dl-xlsx")
    assert Path(info.value.path()).read_bytes()[:2] == b"PK"
    assert "allow_illustrative=true" in (page.locator("#dl-xml3").get_attribute("href") or "")
    with page.expect_download() as info:
        page.click("#dl-xml3")
    validate_document(Path(info.value.path()).read_bytes(), "XML3")
    audit = site["gw"].get("/api/audit", action="export.cost_report")
    assert audit["total"] == 3 and audit["items"][0]["user"] == USERS["billing"]
    page.context.close()


def test_switch_language(browser: Any, site: dict[str, Any]) -> None:
    page = _login(browser, site, "admin", lang="vi")
    page.goto("/ui/billing?from=2025-03-01&to=2025-03-31")
    assert page.locator("h1").inner_text() == "Báo cáo chi phí"
    vi_total = page.locator("#billing-total").inner_text()
    page.click("#lang-en")
    page.wait_for_url("**/ui/billing?from=2025-03-01&to=2025-03-31")
    assert page.locator("h1").inner_text() == "Billing report"
    en_total = page.locator("#billing-total").inner_text()
    assert en_total.endswith(" VND") and en_total.replace(",", "").removesuffix(" VND") == (
        vi_total.replace(".", "").removesuffix(" ₫")
    )
    page.screenshot(path=str(ARTIFACTS / "billing-en.png"), full_page=True)
    page.click("#lang-vi")
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == "Báo cáo chi phí"
    page.context.close()


def test_no_film_printed_from_the_studies_page(browser: Any, site: dict[str, Any]) -> None:
    """Billing staff state "no film printed" on the studies page: a new revision without
    the 2 films of the (illustrative) CT norm; radiologists get no such form."""
    page = _login(browser, site, "radiologist")
    page.goto("/ui/studies")
    assert page.locator("details.billing-inputs").count() == 0
    page.context.close()
    page = _login(browser, site, "billing")
    page.goto("/ui/studies")
    row = page.locator(f'tr[data-study="{site["ct"]}"]')
    row.locator("details.billing-inputs summary").click()
    form = row.locator("details.billing-inputs form")
    form.locator("select[name=filmless]").select_option("true")
    form.locator("input[name=reason]").fill("trả kết quả qua PACS")
    form.locator("button").click()
    gw: GatewayProcess = site["gw"]
    latest = wait_until(
        lambda: next(
            (
                r
                for r in gw.get(f"/api/costs/{site['ct']}")["revisions"]
                if r["delivery"] == "filmless"
            ),
            None,
        ),
        20,
        "a filmless revision",
    )
    assert latest["created_by"] == USERS["billing"] and latest["full_cost"] == 368_087 - 60_000
    assert gw.get(f"/api/costs/{site['ct']}")["inputs"]["filmless"] is True
    page.context.close()
