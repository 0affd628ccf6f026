"""Receive a DICOM file through a process's own receive path, as the DICOM node hands it
over: a copy in the store's temp dir, the SOP class and instance from its header."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom

from gateway.core.context import ProcessContext
from gateway.intake.receive import ReceiveResult


def receive_file(service: ProcessContext, path: Path, calling_ae: str = "CT") -> ReceiveResult:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    tmp = service.store.tmp_dir / f"{ds.SOPInstanceUID}.tmp"
    shutil.copyfile(path, tmp)
    return service.receiver.receive(
        tmp,
        sop_class_uid=str(ds.SOPClassUID),
        sop_instance_uid=str(ds.SOPInstanceUID),
        calling_ae=calling_ae,
    )
