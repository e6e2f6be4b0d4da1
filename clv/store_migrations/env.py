"""Alembic environment of the platform database, for programmatic runs (no ``alembic.ini``).

:func:`clv.store.alembic_config` sets ``script_location`` and ``sqlalchemy.url``, and may pass an
open connection as ``config.attributes["connection"]``: the migrations then run on it, inside the
caller's transaction (that is how :class:`clv.store.Store` upgrades under its lock). Without one,
an engine is made from the URL with :func:`clv.store.create_store_engine` (the same SQLite
pragmas as the application). Logging is left alone: no ``fileConfig``, so the application's
logging configuration stays as it was.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from clv.store import VERSION_TABLE, create_store_engine, metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        # SQLite cannot ALTER most things: later migrations use batch mode (copy and move).
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def run_migrations_offline() -> None:
    """``--sql`` mode: write the SQL for the configured URL's dialect instead of running it."""
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run on the given connection (in its transaction), or on a new one to the URL."""
    given = context.config.attributes.get("connection")
    if given is not None:
        _configure(given)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database: set sqlalchemy.url or pass a connection")
    engine = create_store_engine(url)
    try:
        with engine.begin() as connection:  # one transaction: all of the upgrade or none
            _configure(connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
