"""Bringing a database schema up to date with the Alembic migrations shipped in the package."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from arv.config import get_settings
from arv.private_files import private_dir

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url or get_settings().sqlalchemy_url)
    return config


def upgrade_database(url: str | None = None) -> None:
    """Apply every migration not yet applied to the database at `url` (default: the settings')."""
    settings = get_settings()
    if (url or settings.sqlalchemy_url).startswith("sqlite"):
        private_dir(settings.resolved_data_dir)
    command.upgrade(alembic_config(url), "head")
