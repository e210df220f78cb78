"""The operational database's tables (each change to them is a migration in `migrations/versions`)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Index, Integer, MetaData, String, Table

metadata = MetaData()

#: Signed-in web sessions. The browser holds a random token; only its SHA-256 is stored, so a copy of the database
#: cannot be replayed as a cookie. Times are UTC.
sessions = Table(
    "sessions",
    metadata,
    Column("id_sha256", String(64), primary_key=True),
    Column("user_name", String(80), nullable=False),
    Column("token_fingerprint", String(16), nullable=False),  # the user's access token at sign-in (first 16 hex)
    Column("csrf", String(64), nullable=False),  # the form token of this session
    Column("created_at", DateTime(), nullable=False),
    Column("last_seen_at", DateTime(), nullable=False),
    Column("expires_at", DateTime(), nullable=False),
    Column("revoked_at", DateTime(), nullable=True),
    Column("revoked_reason", String(40), nullable=True),
    Index("ix_sessions_user_name", "user_name"),
    Index("ix_sessions_expires_at", "expires_at"),
)

#: Contact outcomes recorded by care coordinators, one row per recording (never updated: the latest row of a person
#: is in force). Pseudonymised person ids only; the note is shown only within the practice's scope.
outcomes = Table(
    "outcomes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("person_id", BigInteger, nullable=False),
    Column("practice_code", String(12), nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("note", String(1000), nullable=True),
    Column("recorded_by", String(80), nullable=False),
    Column("recorded_at", DateTime(), nullable=False),
    Index("ix_outcomes_person_id", "person_id"),
    Index("ix_outcomes_practice_code", "practice_code"),
)

#: People on a team's caseload (by pseudonymised id; an upload replaces the team's list).
caseloads = Table(
    "caseloads",
    metadata,
    Column("team", String(80), primary_key=True),
    Column("person_id", BigInteger, primary_key=True),
    Column("uploaded_by", String(80), nullable=False),
    Column("uploaded_at", DateTime(), nullable=False),
    Index("ix_caseloads_person_id", "person_id"),
)
