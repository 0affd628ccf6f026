"""storage commitment: requests (one per Transaction UID) and their items

Revision ID: 0007
Revises: 0001
Create Date: 2026-11-25 22:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "commitment_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("transaction_uid", sa.String(length=64), nullable=False),
        sa.Column("calling_ae", sa.String(length=16), nullable=False),
        sa.Column("peer_address", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("instances", sa.Integer(), nullable=False),
        sa.Column("committed", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("deadline_at", sa.DateTime(), nullable=False),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("reported_at", sa.DateTime(), nullable=True),
        sa.Column("result", sa.String(length=16), nullable=False),
        sa.Column("event_type", sa.Integer(), nullable=True),
        sa.Column("report_attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("transaction_uid"),
    )
    op.create_index(
        op.f("ix_commitment_requests_calling_ae"), "commitment_requests", ["calling_ae"]
    )
    op.create_index(op.f("ix_commitment_requests_state"), "commitment_requests", ["state"])
    op.create_index(
        op.f("ix_commitment_requests_received_at"), "commitment_requests", ["received_at"]
    )
    op.create_table(
        "commitment_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_pk", sa.Integer(), nullable=False),
        sa.Column("sop_class_uid", sa.String(length=64), nullable=False),
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("failure_reason", sa.Integer(), nullable=True),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["request_pk"], ["commitment_requests.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("request_pk", "sop_instance_uid", name="uq_commitment_item"),
    )
    op.create_index(op.f("ix_commitment_items_request_pk"), "commitment_items", ["request_pk"])
    op.create_index(
        op.f("ix_commitment_items_sop_instance_uid"), "commitment_items", ["sop_instance_uid"]
    )


def downgrade() -> None:
    op.drop_table("commitment_items")
    op.drop_table("commitment_requests")
