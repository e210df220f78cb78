"""Contact outcomes recorded by care coordinators and teams' caseloads (pseudonymised ids only).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outcomes",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("person_id", sa.BigInteger(), nullable=False),
        sa.Column("practice_code", sa.String(12), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("note", sa.String(1000), nullable=True),
        sa.Column("recorded_by", sa.String(80), nullable=False),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_outcomes_person_id", "outcomes", ["person_id"])
    op.create_index("ix_outcomes_practice_code", "outcomes", ["practice_code"])
    op.create_table(
        "caseloads",
        sa.Column("team", sa.String(80), primary_key=True),
        sa.Column("person_id", sa.BigInteger(), primary_key=True),
        sa.Column("uploaded_by", sa.String(80), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_caseloads_person_id", "caseloads", ["person_id"])


def downgrade() -> None:
    op.drop_index("ix_caseloads_person_id", "caseloads")
    op.drop_table("caseloads")
    op.drop_index("ix_outcomes_practice_code", "outcomes")
    op.drop_index("ix_outcomes_person_id", "outcomes")
    op.drop_table("outcomes")
