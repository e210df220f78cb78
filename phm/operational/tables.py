"""The operational database's tables (each change to them is a migration in `migrations/versions`)."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, MetaData, String, Table

metadata = MetaData()

#: Signed-in web sessions. The browser holds a random token; only its SHA-256 is stored, so a copy of the database
#: cannot be replayed as a cookie. Times are UTC.
sessions = Table(
    "sessions", metadata,
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
