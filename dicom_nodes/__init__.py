"""DIMSE services: storage, worklist, MPPS, storage commitment, association policy."""
