"""A process and its roles: the shared context, the wiring of every step, the runner, the
worker loop, extra DICOM receivers."""
