"""Alembic environment: :class:`clv.store.Store` passes an open connection in ``attributes``.

No logging is configured here (the application's own logging stays as it is), and the version
table is ``clv_alembic_version`` so the platform can share a database with MLflow or Prefect,
which keep their own ``alembic_version``.
"""

from __future__ import annotations

from alembic import context

VERSION_TABLE = "clv_alembic_version"

connection = context.config.attributes.get("connection")
if connection is None:  # `alembic -x url=... upgrade head` from a shell
    from sqlalchemy import create_engine

    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise SystemExit("give the database: alembic -x url=sqlite:///path/clv.db upgrade head")
    with create_engine(url).begin() as conn:
        context.configure(connection=conn, version_table=VERSION_TABLE)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()
