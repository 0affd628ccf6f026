"""The fast-path seam: the version check, the three modes, the scoped relaxed reading,
the temp-file binding; and the setting as the gateway reads it."""

from __future__ import annotations

import threading
from pathlib import Path

import pydicom.config
import pytest
from pynetdicom import dimse_messages

from dicom_nodes import fast_path
from gateway.core.settings import load_settings

pytestmark = pytest.mark.unit

GOOD = dict(fast_path.VERIFIED)
NEWER = {**GOOD, "pynetdicom": "9.9.9"}


def test_verified_versions_take_the_fast_path() -> None:
    active, why = fast_path.decide(True, GOOD)
    assert active
    assert "fast path on" in why


def test_other_versions_fall_back_to_stock_and_say_why() -> None:
    active, why = fast_path.decide(True, NEWER)
    assert not active
    assert "pynetdicom 9.9.9" in why
    assert f"verified: {GOOD['pynetdicom']}" in why


def test_force_refuses_other_versions() -> None:
    with pytest.raises(fast_path.FastPathRefused, match=r"pynetdicom 9\.9\.9"):
        fast_path.decide("force", NEWER)
    assert fast_path.decide("force", GOOD)[0]


def test_false_is_stock_whatever_the_versions() -> None:
    assert not fast_path.decide(False, GOOD)[0]


def test_verified_versions_are_the_pinned_ones() -> None:
    pins = dict(
        line.split("==", 1)
        for line in Path("constraints.txt").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert {name: pins[name] for name in fast_path.VERIFIED} == dict(fast_path.VERIFIED)


@pytest.mark.parametrize(
    ("text", "mode"),
    [("true", True), ("False", False), ("force", "force"), ("0", False), ("on", True)],
)
def test_env_mode(text: str, mode: fast_path.Mode) -> None:
    assert fast_path.parse_mode(text) == mode


def test_env_mode_rejects_anything_else() -> None:
    with pytest.raises(ValueError, match="RISGATE_DICOM__FAST_PATH"):
        fast_path.parse_mode("fast")


@pytest.mark.parametrize(("env", "value"), [("false", False), ("force", "force"), ("1", True)])
def test_setting_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, env: str, value: fast_path.Mode
) -> None:
    monkeypatch.setenv(fast_path.ENV, env)
    assert load_settings().dicom.fast_path == value


def test_relaxed_reading_is_scoped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fast_path, "_decided", True)
    settings = pydicom.config.settings
    before = settings.reading_validation_mode
    assert before != pydicom.config.IGNORE
    inside = threading.Event()
    leave = threading.Event()

    def other_receive() -> None:
        with fast_path.relaxed_reading():
            inside.set()
            leave.wait(10)

    thread = threading.Thread(target=other_receive)
    thread.start()
    assert inside.wait(10)
    with fast_path.relaxed_reading():
        assert settings.reading_validation_mode == pydicom.config.IGNORE
    # the other receive still reads: still relaxed until it is done
    assert settings.reading_validation_mode == pydicom.config.IGNORE
    leave.set()
    thread.join(10)
    assert settings.reading_validation_mode == before


def test_relaxed_reading_is_nothing_on_the_stock_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fast_path, "_decided", False)
    before = pydicom.config.settings.reading_validation_mode
    with fast_path.relaxed_reading():
        assert pydicom.config.settings.reading_validation_mode == before


def test_received_temp_files_in_the_given_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    monkeypatch.setattr(dimse_messages, "NamedTemporaryFile", dimse_messages.NamedTemporaryFile)
    fast_path.bind_received_temp_files(tmp_path)
    with dimse_messages.NamedTemporaryFile(delete=True, mode="wb", suffix=".dcm") as f:
        assert Path(f.name).parent == tmp_path
    assert tempfile.tempdir is None or Path(tempfile.tempdir) != tmp_path
