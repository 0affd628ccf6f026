"""Reconciliation and correction: each study matched to its order, and its instances
corrected on the way out or inside the PACS."""
