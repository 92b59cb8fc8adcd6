"""The Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from alembic import command

from arv.config import get_settings
from arv.db.migrate import alembic_config


def test_migrations_match_the_models(arv_env: dict[str, str]) -> None:
    # `alembic check` fails when autogenerate would find any difference between models and database.
    command.check(alembic_config(get_settings().sqlalchemy_url))
