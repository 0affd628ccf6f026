"""studies: index (last_received_at, id) for the study list's newest-first order

A year of data (50,000 studies) made ``GET /api/studies`` sort every study for its first
page; with the index the page is read in order (bench/scale.py).

Revision ID: 0009_scale
Revises: 0007
Create Date: 2026-12-03 07:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009_scale"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_studies_last_received", "studies", ["last_received_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_studies_last_received", table_name="studies")
