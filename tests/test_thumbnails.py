"""Series previews: CT with its window, a JPEG-baseline multi-frame YBR ultrasound, and a
series that cannot be rendered (reason kept); made by the ``thumbnail`` job on
``study.stable`` and served by ``GET /api/series/{uid}/thumbnail``."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.pixels import pixel_array
from sqlalchemy import select

from gateway.core.context import ProcessContext
from gateway.core.settings import Settings
from gateway.intake import thumbnails
from gateway.intake.stability import mark_stable
from gateway.intake.thumbnails import Thumbnail, render
from gateway.process.startup import create_context
from gateway.process.worker import Worker
from tests.support.auth import authed_client
from tests.support.ctgen import make_ct_study
from tests.support.receive import receive_file

US_FILE = Path(str(get_testdata_file("examples_ybr_color.dcm")))  # bundled with pydicom
RTPLAN_FILE = Path(str(get_testdata_file("rtplan.dcm")))


@pytest.mark.unit
def test_ct_uses_the_dataset_window(tmp_path: Path) -> None:
    _, [path] = make_ct_study(tmp_path, 1, size=64)
    image = render(path, 256)
    assert image.mode == "L" and image.size == (64, 64)
    ds = pydicom.dcmread(path)
    hu = ds.pixel_array.astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    expected = ((hu - (40 - 0.5 - 399 / 2)) / 399).clip(0, 1) * 255
    assert np.abs(np.asarray(image, dtype=float) - expected.astype(np.uint8)).max() <= 1


@pytest.mark.unit
def test_automatic_window_and_monochrome1(tmp_path: Path) -> None:
    _, [path] = make_ct_study(tmp_path, 1, size=64)
    ds = pydicom.dcmread(path)
    del ds.WindowCenter, ds.WindowWidth
    ds.save_as(tmp_path / "nowin.dcm")
    auto = np.asarray(render(tmp_path / "nowin.dcm", 64))
    assert auto.min() == 0 and auto.max() == 255  # 0.5-99.5 percentiles spread the range
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.save_as(tmp_path / "mono1.dcm")
    inverted = np.asarray(render(tmp_path / "mono1.dcm", 64))
    assert np.array_equal(inverted, 255 - auto)


@pytest.mark.unit
def test_compressed_multiframe_colour_middle_frame() -> None:
    ds = pydicom.dcmread(US_FILE)
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50" and ds.NumberOfFrames == 30
    image = render(US_FILE, 128)
    assert image.mode == "RGB" and max(image.size) == 128
    expected = Image.fromarray(pixel_array(ds, index=15, as_rgb=True), "RGB")
    expected.thumbnail((128, 128), Image.Resampling.LANCZOS)
    assert np.array_equal(np.asarray(image), np.asarray(expected))
    first = Image.fromarray(pixel_array(ds, index=0, as_rgb=True), "RGB")
    first.thumbnail((128, 128), Image.Resampling.LANCZOS)
    assert not np.array_equal(np.asarray(image), np.asarray(first))


@pytest.mark.unit
def test_not_an_image() -> None:
    with pytest.raises(thumbnails.RenderError, match="no pixel data"):
        render(RTPLAN_FILE, 64)


@pytest.fixture
def service(db_url: str, tmp_path: Path) -> Iterator[ProcessContext]:
    settings = Settings(data_dir=tmp_path / "var", database={"url": db_url}, store={"fsync": False})
    svc = create_context(settings)
    thumbnails.install(svc)
    yield svc
    svc.close()


def _receive(service: ProcessContext, path: Path) -> str:
    result = receive_file(service, path, "T")
    assert result.outcome.name == "STORED", result
    return str(pydicom.dcmread(path, stop_before_pixels=True).SeriesInstanceUID)


def test_job_on_stable_then_route(service: ProcessContext, tmp_path: Path) -> None:
    _, ct_paths = make_ct_study(tmp_path / "ct", 3, size=64)
    ct_series = {_receive(service, p) for p in ct_paths}
    us_series = _receive(service, US_FILE)
    plan_series = _receive(service, RTPLAN_FILE)
    with service.db.write_session() as session:
        stable = mark_stable(session, 0)  # idle for no time at all: every study received so far
    assert len(stable) == 3
    Worker(service).run_once()
    with service.db.session_factory() as session:
        rows = {t.series_uid: t for t in session.scalars(select(Thumbnail))}
    [ct] = ct_series
    assert rows[ct].state == "OK" and rows[us_series].state == "OK"
    assert rows[plan_series].state == "FAILED" and "no pixel data" in rows[plan_series].reason
    client = authed_client(service, "rad", "radiologist")
    r = client.get(f"/api/series/{us_series}/thumbnail")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(r.content)).mode == "RGB"
    failed = client.get(f"/api/series/{plan_series}/thumbnail")
    assert failed.status_code == 409 and "no pixel data" in failed.json()["detail"]
    assert client.get("/api/series/1.2.3/thumbnail").status_code == 404
    assert client.get("/api/series/../x/thumbnail").status_code in (404, 422)
    # a purged local copy: the cached preview stays, a new render says why it cannot
    for p in service.store.instances_dir.rglob("*.dcm"):
        p.unlink()
    us_study = str(pydicom.dcmread(US_FILE, stop_before_pixels=True).StudyInstanceUID)
    assert thumbnails.render_study(service, us_study) == {us_series: "FAILED"}
    with service.db.session_factory() as session:
        row = session.scalar(select(Thumbnail).where(Thumbnail.series_uid == us_series))
        assert row is not None and "purged" in row.reason
