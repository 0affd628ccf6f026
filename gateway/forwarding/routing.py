"""Routing rules: which destinations an instance goes to (by calling AE, modality, SOP class)."""

from __future__ import annotations

from gateway.core.settings import DestinationSettings
from gateway.intake.instance_meta import InstanceMeta


def matches(dest: DestinationSettings, meta: InstanceMeta, calling_ae: str) -> bool:
    """An empty rule list matches everything; each non-empty list must contain the value."""
    if dest.calling_aes and calling_ae not in dest.calling_aes:
        return False
    if dest.modalities and meta.modality.upper() not in {m.upper() for m in dest.modalities}:
        return False
    return not (dest.sop_classes and meta.sop_class_uid not in dest.sop_classes)


def destinations_for(
    destinations: list[DestinationSettings], meta: InstanceMeta, calling_ae: str
) -> list[str]:
    return [d.name for d in destinations if matches(d, meta, calling_ae)]
