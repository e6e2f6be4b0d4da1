"""Alembic migrations of the platform database (:mod:`clv.store`), run by ``Store`` on first use.

There is no ``alembic.ini``: :func:`clv.store.alembic_config` builds the configuration. To write a
new migration (autogenerate compares a database at head with :data:`clv.store.metadata`)::

    from alembic import command
    from clv.store import alembic_config

    config = alembic_config("sqlite:///.clv/clv.db")
    command.revision(config, "what changes", rev_id="0002", autogenerate=True)

Name the file ``NNNN_what_changes.py`` with ``revision = "NNNN"``; migrations never import the
application's tables (they describe the schema as it was at their revision).
"""
