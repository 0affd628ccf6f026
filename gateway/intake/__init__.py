"""Intake: a received DICOM instance checked, stored and indexed in one transaction; study
stability; series previews."""
