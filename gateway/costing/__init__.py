"""Costing in the gateway: the persisted norm catalogue, cost records for every stable
study (immutable revisions), unmapped studies, and streamed billing reports.

The arithmetic lives in :mod:`pricing_norms` (pure); this package reads the database,
builds :class:`~pricing_norms.mapping.StudyFacts`, stores the results and streams reports.
"""
