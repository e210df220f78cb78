"""The operational database: state the service changes as people use it (signed-in sessions, coordinators'
contact outcomes and teams' caseloads). SQLAlchemy 2 with the schema managed by Alembic migrations; SQLite (WAL) under
PHM_HOME by default, PostgreSQL when `PHM_DATABASE_URL` is set. Safe for several service workers at once."""
