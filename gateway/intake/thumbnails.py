"""Series previews: one thumbnail per series, rendered from the gateway's own store.

Rendered by the ``thumbnail`` job on ``study.stable`` (off the receive path), before the
local copies may be purged after verification; the image is cached under
``<data_dir>/thumbnails`` and kept. A series that cannot be rendered keeps the reason.

Pixels: pydicom decodes (compressed syntaxes through the pylibjpeg plugins), the middle
frame of a multi-frame image, the modality LUT (rescale) is applied, then the dataset's
window, else a 0.5-99.5 percentile window; colour (RGB, YBR) is converted to RGB.
"""

from __future__ import annotations

import io
import logging
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.pixels import apply_rescale, pixel_array
from sqlalchemy import DateTime, Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from dicom_nodes.identifiers import validate_uid
from gateway.core import jobs
from gateway.core.context import ProcessContext
from gateway.core.models import Base, Instance, Job, Series, Study, utcnow

log = logging.getLogger(__name__)

JOB_KIND = "thumbnail"
DEFER_BYTES = 1 << 20  # values above this are read only when used
MAX_ATTEMPTS = 5


class ThumbState:
    OK = "OK"
    FAILED = "FAILED"


class Thumbnail(Base):
    """A rendered series preview (file under the data dir) or why it could not be made."""

    __tablename__ = "thumbnails"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    series_uid: Mapped[str] = mapped_column(String(64), unique=True)
    study_uid: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(String(512), default="")
    media_type: Mapped[str] = mapped_column(String(32), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime())


class RenderError(Exception):
    """The series cannot be previewed; the message says why (no patient data)."""


def _window(ds: Dataset, frame: np.ndarray) -> tuple[float, float]:
    """(low, high) from the dataset's first window, else robust percentiles."""
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center is not None and width is not None:
        try:
            c = float(
                center[0] if hasattr(center, "__len__") and not isinstance(center, str) else center
            )
            w = float(
                width[0] if hasattr(width, "__len__") and not isinstance(width, str) else width
            )
        except (TypeError, ValueError, IndexError):
            c, w = 0.0, 0.0
        if w > 1:
            return c - 0.5 - (w - 1) / 2, c - 0.5 + (w - 1) / 2
    low, high = np.percentile(frame, [0.5, 99.5])
    if high <= low:
        low, high = float(frame.min()), float(frame.max())
    return float(low), float(high)


def render(path: Path, size: int) -> Image.Image:
    """The preview of one stored instance, at most ``size`` pixels on its longest side."""
    try:
        # Large values (the pixel data) stay on disk: a 512 MB multi-frame image is not
        # read into memory; pixel_array below reads the one frame it decodes.
        ds = dcmread(path, defer_size=DEFER_BYTES)
    except Exception as exc:
        raise RenderError(f"unreadable file: {type(exc).__name__}") from None
    if "PixelData" not in ds and "FloatPixelData" not in ds:
        raise RenderError("no pixel data (not an image)")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    middle = frames // 2
    try:
        if frames > 1 and "PixelData" in ds:
            arr = pixel_array(str(path), index=middle, as_rgb=True)
        else:
            arr = pixel_array(ds, as_rgb=True)
    except Exception as exc:
        tsyntax = ds.file_meta.get("TransferSyntaxUID", "?")
        raise RenderError(f"cannot decode pixel data ({tsyntax}): {type(exc).__name__}") from None
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if int(ds.get("SamplesPerPixel", 1)) == 3:
        if arr.ndim != 3 or arr.shape[-1] != 3:
            raise RenderError(f"unexpected colour array shape {arr.shape}")
        if arr.dtype != np.uint8:
            top = float(arr.max()) or 1.0
            arr = (arr.astype(np.float64) * (255.0 / top)).clip(0, 255).astype(np.uint8)
        image = Image.fromarray(arr, "RGB")
    else:
        if arr.ndim != 2:
            raise RenderError(f"unexpected array shape {arr.shape}")
        values = apply_rescale(arr, ds).astype(np.float64)
        low, high = _window(ds, values)
        scaled = ((values - low) / max(high - low, 1e-6)).clip(0.0, 1.0) * 255.0
        grey = scaled.astype(np.uint8)
        if photometric == "MONOCHROME1":
            grey = 255 - grey
        image = Image.fromarray(grey, "L")
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    return image


def encode(image: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    if fmt == "jpeg":
        image.convert("RGB" if image.mode == "RGB" else "L").save(buf, "JPEG", quality=85)
    else:
        image.save(buf, "PNG", optimize=True)
    return buf.getvalue()


def thumbnail_dir(service: ProcessContext) -> Path:
    return (service.settings.data_dir / "thumbnails").resolve()


def render_study(service: ProcessContext, study_uid: str) -> dict[str, str]:
    """Render every series of a stored study; returns series uid -> state."""
    size, fmt = service.settings.ui.thumbnail_size, service.settings.ui.thumbnail_format
    media = "image/png" if fmt == "png" else "image/jpeg"
    with service.db.session_factory() as session:
        rows = session.execute(
            select(Series.series_uid, Instance.path, Instance.instance_number)
            .join(Study, Series.study_pk == Study.id)
            .join(Instance, Instance.series_pk == Series.id)
            .where(Study.study_uid == study_uid)
            .order_by(Series.id, Instance.id)
        ).all()
    by_series: dict[str, list[tuple[str, str]]] = {}
    for series_uid, rel, number in rows:
        by_series.setdefault(series_uid, []).append((number or "", rel))
    out: dict[str, str] = {}
    for series_uid, items in by_series.items():
        items.sort(key=lambda x: (int(x[0]) if x[0].lstrip("-").isdigit() else 0, x[1]))
        _, rel = items[len(items) // 2]
        target = (
            thumbnail_dir(service) / validate_uid(study_uid) / f"{validate_uid(series_uid)}.{fmt}"
        )
        try:
            source = service.store.absolute(rel)
            if not source.exists():
                raise RenderError("local copy no longer in the store (purged)")
            data = encode(render(source, size), fmt)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(target)
            state, reason, path = ThumbState.OK, "", str(target.relative_to(thumbnail_dir(service)))
        except RenderError as exc:
            state, reason, path = ThumbState.FAILED, str(exc), ""
        except Exception as exc:  # a broken file must not stop the other series
            state, reason, path = ThumbState.FAILED, f"render failed: {type(exc).__name__}", ""
        with service.db.write_session() as session:
            _save(session, series_uid, study_uid, state, path, media if path else "", reason)
        out[series_uid] = state
    return out


def _save(
    session: Session,
    series_uid: str,
    study_uid: str,
    state: str,
    path: str,
    media: str,
    reason: str,
) -> None:
    row = session.scalar(select(Thumbnail).where(Thumbnail.series_uid == series_uid))
    if row is None:
        row = Thumbnail(series_uid=series_uid, study_uid=study_uid)
        session.add(row)
    row.state, row.path, row.media_type, row.reason = state, path, media, reason
    row.updated_at = utcnow()


def install(service: ProcessContext) -> None:
    """Subscribe the thumbnail job to ``study.stable`` and register its handler."""
    service.job_handlers[JOB_KIND] = handle


def handle(service: ProcessContext, job_ids: list[int]) -> None:
    for job_id in job_ids:
        try:
            with service.db.session_factory() as session:
                job = session.get(Job, job_id)
                ref = job.ref if job else None
            if ref is not None:
                render_study(service, ref)
            with service.db.write_session() as session:
                jobs.finish(session, [job_id])
        except Exception as exc:
            log.exception("thumbnail job %d failed", job_id)
            with service.db.write_session() as session:
                jobs.fail(session, [job_id], type(exc).__name__, max_attempts=MAX_ATTEMPTS)
