"""The database: models, the one session factory, and Alembic migrations."""
