"""Alembic environment of the test migrations: runs on the connection the migration
tool hands over (its transaction), or offline for the compatibility check."""

from alembic import context

if context.is_offline_mode():
    context.configure(url=context.config.get_main_option("sqlalchemy.url"), literal_binds=True)
else:
    context.configure(connection=context.config.attributes["connection"])

with context.begin_transaction():
    context.run_migrations()
