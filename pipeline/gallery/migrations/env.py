"""Alembic's entry point for the sample gallery's schema. Whoever runs the migration
(the pipeline's migration tool, from the worker's databases file) gives either an open
connection, already in its transaction, as `config.attributes["connection"]` (Alembic's
recipe for sharing a connection), or the database URL as the configuration's
`sqlalchemy.url`: never a file here.

A plain `postgresql://` URL is run through psycopg 3, the driver the gallery uses.
Offline mode (`--sql`) prints the SQL instead, which the pipeline's compatibility check
reads before an expand touches production."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, pool

PLAIN_SCHEME = "postgresql://"
PSYCOPG_SCHEME = "postgresql+psycopg://"


def sqlalchemy_url(url: str) -> str:
    return PSYCOPG_SCHEME + url.removeprefix(PLAIN_SCHEME) if url.startswith(PLAIN_SCHEME) else url


def run_offline(url: str) -> None:
    context.configure(url=url, literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_on(connection: Connection) -> None:
    context.configure(connection=connection, transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online(url: str) -> None:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        run_on(connection)
    engine.dispose()


def main() -> None:
    given = context.config.attributes.get("connection")
    url = sqlalchemy_url(context.config.get_main_option("sqlalchemy.url") or "postgresql://")
    if given is not None:
        run_on(given)
    elif context.is_offline_mode():
        run_offline(url)
    else:
        run_online(url)


main()
