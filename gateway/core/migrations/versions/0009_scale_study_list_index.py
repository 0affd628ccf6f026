"""studies: indexes (last_received_at, id) and (state, last_received_at)

A year of data (50,000 studies, bench/scale.py): ``GET /api/studies`` sorted every study
for its first page (now read in index order); the worker's stable-study poll
(``gateway.intake.stability.mark_stable``: RECEIVING and idle) could scan every study by its
receive time once the statistics said ``state`` was unselective (now one range).

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
    op.create_index("ix_studies_state_received", "studies", ["state", "last_received_at"])


def downgrade() -> None:
    op.drop_index("ix_studies_state_received", table_name="studies")
    op.drop_index("ix_studies_last_received", table_name="studies")
