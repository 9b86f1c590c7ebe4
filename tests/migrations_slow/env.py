"""Alembic environment of the slow test revisions: online, on the connection (and in
the transaction) the pipeline's migration tool hands over; offline, the SQL that the
expand's compatibility check reads."""

from alembic import context

config = context.config
if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
else:
    context.configure(connection=config.attributes["connection"], transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
