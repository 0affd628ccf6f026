"""reconciliation: study <-> order matches, outbound HL7 messages

Revision ID: 0005
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "study_matches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_pk", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("rp_pk", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("linked_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["rp_pk"], ["requested_procedures.id"]),
        sa.ForeignKeyConstraint(["study_pk"], ["studies.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("study_pk"),
    )
    with op.batch_alter_table("study_matches") as batch_op:
        batch_op.create_index("ix_study_matches_state", ["state"], unique=False)
        batch_op.create_index("ix_study_matches_rp_pk", ["rp_pk"], unique=False)
    op.create_table(
        "outbound_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("study_pk", sa.Integer(), nullable=False),
        sa.Column("control_id", sa.String(length=64), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("ack_code", sa.String(length=2), nullable=False),
        sa.Column("ack", sa.LargeBinary(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["study_pk"], ["studies.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("outbound_messages") as batch_op:
        batch_op.create_index("ix_outbound_messages_study_pk", ["study_pk"], unique=False)


def downgrade() -> None:
    op.drop_table("outbound_messages")
    op.drop_table("study_matches")
