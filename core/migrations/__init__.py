"""The single Alembic environment that composes every plugin's migration branch."""
