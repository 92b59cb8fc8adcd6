"""Alembic environment: migrates the database the settings name (or the URL the caller passed)."""

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext

from arv.config import get_settings
from arv.db.models import Base, UTCDateTime
from arv.db.session import make_engine

config = context.config
url = config.get_main_option("sqlalchemy.url") or get_settings().sqlalchemy_url


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Migrations name plain SQLAlchemy types, so they never depend on the models module."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations() -> None:
    if context.is_offline_mode():
        context.configure(
            url=url,
            target_metadata=Base.metadata,
            literal_binds=True,
            render_as_batch=url.startswith("sqlite"),
            render_item=render_item,
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=url.startswith("sqlite"),
            render_item=render_item,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations()
