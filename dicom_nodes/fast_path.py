"""The one switch between the gateway's fast DICOM path and stock pynetdicom.

The fast path (:mod:`dicom_nodes.event_driven` with :mod:`dicom_nodes.dataset_stream`,
:mod:`dicom_nodes.dimse_shortcuts`, the
shared contexts of :mod:`dicom_nodes.transport`, the held reactor of
:mod:`dicom_nodes.storescu`) replaces private parts of pynetdicom and pydicom: DUL
methods, state handling, module functions. It is only correct for the versions it was
verified with (:data:`VERIFIED`, the versions pinned in constraints.txt). So:

* :func:`configure` decides once per process, from ``dicom.fast_path``: ``true`` takes the
  fast path if the installed versions are exactly the verified ones, otherwise it logs why
  and runs stock pynetdicom; ``"force"`` refuses to start (:class:`FastPathRefused`)
  instead of falling back; ``false`` always runs stock pynetdicom (its AE, association,
  DUL and DIMSE; the gateway's own C-STORE handler, store and index are the same);
* :func:`enabled` is what the DICOM node and the storage SCU ask; a process that never
  called :func:`configure` (a test, a tool) decides from ``RISGATE_DICOM__FAST_PATH``;
* :func:`relaxed_reading` turns pydicom's value validation off only while the receive path
  reads a header, and only on the fast path;
* :func:`bind_received_temp_files` makes pynetdicom take the temp file of a received
  dataset from the instance store's tmp dir (same file system as its final place), made
  ahead of time, on both paths, without changing :data:`tempfile.tempdir` for the whole
  process.

Upgrading pydicom or pynetdicom: ``scripts/check-upgrade.sh`` (docs/decisions.md).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Literal

import pydicom.config
from pynetdicom import dimse_messages

from dicom_nodes.spare_files import SpareTempFiles

log = logging.getLogger(__name__)

# The exact versions the fast path was verified with (as pinned in constraints.txt).
VERIFIED: Mapping[str, str] = {"pydicom": "3.0.2", "pynetdicom": "3.0.4"}
ENV = "RISGATE_DICOM__FAST_PATH"

Mode = bool | Literal["force"]


class FastPathRefused(RuntimeError):
    """``dicom.fast_path = "force"`` with versions the fast path was not verified with."""


def installed_versions() -> dict[str, str]:
    return {name: metadata.version(name) for name in VERIFIED}


def decide(mode: Mode, installed: Mapping[str, str]) -> tuple[bool, str]:
    """Whether to take the fast path, and why (for the log). Raises
    :class:`FastPathRefused` when forced with versions it was not verified with."""
    if mode is False:
        return False, "dicom.fast_path is false: stock pynetdicom"
    wrong = [
        f"{name} {installed.get(name)} (verified: {version})"
        for name, version in VERIFIED.items()
        if installed.get(name) != version
    ]
    if not wrong:
        return True, "fast path on (" + ", ".join(f"{k} {v}" for k, v in VERIFIED.items()) + ")"
    why = "the fast path was not verified with " + ", ".join(wrong)
    if mode == "force":
        raise FastPathRefused(why + '; dicom.fast_path is "force": not starting')
    return False, why + ": stock pynetdicom instead"


def parse_mode(text: str) -> Mode:
    value = text.strip().lower()
    if value == "force":
        return "force"
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{ENV} must be true, false or force, not {text!r}")


_lock = threading.Lock()
_decided: bool | None = None


def configure(mode: Mode) -> bool:
    """Decide (once per process) and install the fast path if taken; returns whether."""
    global _decided
    with _lock:
        if _decided is not None:
            return _decided
        active, why = decide(mode, installed_versions())
        if active:
            from dicom_nodes import dimse_shortcuts

            dimse_shortcuts.apply()
            log.info("DICOM %s", why)
        elif mode is False:
            log.info("DICOM %s", why)
        else:
            log.warning("DICOM: %s", why)
        _decided = active
        return active


def enabled() -> bool:
    """The process's decision (made from ``RISGATE_DICOM__FAST_PATH`` if not made yet)."""
    if _decided is not None:
        return _decided
    return configure(parse_mode(os.environ.get(ENV, "true")))


_relaxed = 0
_relaxed_lock = threading.Lock()
_saved_mode = pydicom.config.WARN


@contextmanager
def relaxed_reading() -> Iterator[None]:
    """pydicom's reading validation off while the block runs (fast path only).

    pydicom's setting is process-wide, not per thread: it is off while at least one
    receive reads a header, and restored when the last one is done. Validation only
    warns (the gateway validates the UIDs it uses itself, ``dicom_nodes.identifiers``)."""
    global _relaxed, _saved_mode
    if not enabled():
        yield
        return
    settings = pydicom.config.settings
    with _relaxed_lock:
        if _relaxed == 0:
            _saved_mode = settings.reading_validation_mode
            settings.reading_validation_mode = pydicom.config.IGNORE
        _relaxed += 1
    try:
        yield
    finally:
        with _relaxed_lock:
            _relaxed -= 1
            if _relaxed == 0:
                settings.reading_validation_mode = _saved_mode


_temp_files: SpareTempFiles | None = None


def bind_received_temp_files(tmp_dir: Path) -> None:
    """pynetdicom's temp files of received datasets (``STORE_RECV_CHUNKED_DATASET``) in
    ``tmp_dir``, created ahead (:class:`dicom_nodes.spare_files.SpareTempFiles`): its
    ``decode_msg`` is the only user of that name in the module."""
    global _temp_files
    with _lock:
        if _temp_files is not None:
            _temp_files.stop()
        _temp_files = SpareTempFiles(tmp_dir)
        dimse_messages.NamedTemporaryFile = _temp_files  # type: ignore[assignment]
