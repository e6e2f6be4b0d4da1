"""Alembic migrations of the platform database (run by :class:`clv.store.Store` on first use)."""
