"""cost: film/PACS price variants with their decision, delivery and TYLE_TT_DV on cost
records, staff inputs per study, mapping versions, films printed reported by MPPS

Revision ID: 0008_cost
Revises: 0007, 0004 (joins the costing branch, whose tables it alters; depends on 0003 orders)
Create Date: 2026-12-03 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_cost"
down_revision: str | Sequence[str] | None = ("0007", "0004")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = "0003"


def upgrade() -> None:
    with op.batch_alter_table("cat_prices") as batch:
        batch.add_column(sa.Column("variant", sa.String(8), nullable=False, server_default=""))
        batch.add_column(
            sa.Column("decision_number", sa.String(128), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("decision_date", sa.Date(), nullable=True))
    with op.batch_alter_table("cost_records") as batch:
        batch.add_column(
            sa.Column("price_variant", sa.String(8), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("delivery", sa.String(16), nullable=False, server_default=""))
        batch.add_column(
            sa.Column("tyle_tt_dv", sa.Integer(), nullable=False, server_default="100")
        )
    with op.batch_alter_table("mpps") as batch:
        batch.add_column(sa.Column("films_printed", sa.Integer(), nullable=True))
    op.create_table(
        "cost_study_inputs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_pk", sa.Integer(), nullable=False),
        sa.Column("filmless", sa.Boolean(), nullable=True),
        sa.Column("tyle_tt_dv", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=512), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["study_pk"], ["studies.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("study_pk"),
    )
    op.create_table(
        "cost_mapping_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("mapping_json", sa.Text(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("fingerprint"),
    )


def downgrade() -> None:
    op.drop_table("cost_mapping_versions")
    op.drop_table("cost_study_inputs")
    with op.batch_alter_table("mpps") as batch:
        batch.drop_column("films_printed")
    with op.batch_alter_table("cost_records") as batch:
        batch.drop_column("tyle_tt_dv")
        batch.drop_column("delivery")
        batch.drop_column("price_variant")
    with op.batch_alter_table("cat_prices") as batch:
        batch.drop_column("decision_date")
        batch.drop_column("decision_number")
        batch.drop_column("variant")
