"""The expand compatibility check, on the SQL Alembic's offline mode writes (the
gallery's 0002 and 0003 revisions) and on single statements, allowed and refused."""

from __future__ import annotations

import pytest

from pipeline.decisions.schema_compat import expand_problems, split_statements

GALLERY_0002_SQL = """BEGIN;

-- Running upgrade 0001 -> 0002

ALTER TABLE shoots ADD COLUMN priority INTEGER;

UPDATE alembic_version SET version_num='0002' WHERE alembic_version.version_num = '0001';

COMMIT;
"""

GALLERY_0003_SQL = """BEGIN;

-- Running upgrade 0002 -> 0003

ALTER TABLE shoots ALTER COLUMN priority SET NOT NULL;

UPDATE alembic_version SET version_num='0003' WHERE alembic_version.version_num = '0002';

COMMIT;
"""

FIRST_SCHEMA_SQL = """BEGIN;
CREATE TABLE alembic_version (
    version_num VARCHAR(32) NOT NULL,
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
CREATE TABLE clients (id serial PRIMARY KEY, name text NOT NULL);
ALTER TABLE clients ADD CONSTRAINT name_not_empty CHECK (name <> '');
CREATE UNIQUE INDEX clients_name ON clients (name);
INSERT INTO alembic_version (version_num) VALUES ('0001') RETURNING alembic_version.version_num;
COMMIT;
"""


def test_the_gallery_expand_is_compatible():
    assert expand_problems(GALLERY_0002_SQL) == []


def test_the_gallery_contract_is_refused_as_an_expand_naming_its_statement():
    problems = expand_problems(GALLERY_0003_SQL)
    assert len(problems) == 1
    assert problems[0].startswith("ALTER TABLE shoots ALTER COLUMN priority SET NOT NULL:")
    assert "SET NOT NULL" in problems[0].split(":", 1)[1]


def test_anything_goes_on_a_table_created_in_the_same_step():
    assert expand_problems(FIRST_SCHEMA_SQL) == []


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE tags (id serial PRIMARY KEY, label text NOT NULL)",
        'CREATE TABLE IF NOT EXISTS public."Tags" (id int)',
        "ALTER TABLE shoots ADD COLUMN priority integer NULL",
        "ALTER TABLE shoots ADD priority integer",
        "ALTER TABLE shoots ADD COLUMN IF NOT EXISTS priority integer",
        "ALTER TABLE shoots ADD COLUMN priority integer NOT NULL DEFAULT 0",
        "ALTER TABLE shoots ADD COLUMN note text DEFAULT 'NOT NULL'",
        "ALTER TABLE shoots ADD COLUMN client_ref int REFERENCES clients (id)",
        "ALTER TABLE ONLY public.shoots ADD COLUMN a int, ADD COLUMN b numeric(10, 2)",
        "ALTER TABLE shoots VALIDATE CONSTRAINT shoots_client",
        "CREATE INDEX shoots_priority ON shoots (priority)",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS shoots_priority ON shoots USING btree (priority)",
        "CREATE SEQUENCE shoot_numbers",
        "CREATE TYPE mood AS ENUM ('calm', 'busy')",
        "ALTER TYPE mood ADD VALUE 'frantic'",
        "CREATE VIEW recent_shoots AS SELECT * FROM shoots",
        "COMMENT ON COLUMN shoots.priority IS 'drop me; rename me'",
        "INSERT INTO clients (name) VALUES ('walk-in')",
        "SET lock_timeout = '2s'",
        "-- only a comment",
        "",
    ],
)
def test_additive_statements_pass(statement):
    assert expand_problems(statement) == []


@pytest.mark.parametrize(
    ("statement", "reason"),
    [
        ("DROP TABLE photos", "drops"),
        ("DROP INDEX shoots_priority", "drops"),
        ("ALTER TABLE shoots DROP COLUMN name", "drops"),
        ("ALTER TABLE shoots DROP CONSTRAINT shoots_client_id_fkey", "drops"),
        ("ALTER TABLE shoots ALTER COLUMN created_at DROP DEFAULT", "drops"),
        ("ALTER TABLE shoots ALTER COLUMN priority DROP NOT NULL", "drops"),
        ("ALTER TABLE shoots RENAME TO sessions", "renames"),
        ("ALTER TABLE shoots RENAME COLUMN name TO title", "renames"),
        ("ALTER INDEX shoots_priority RENAME TO shoots_rank", "renames"),
        ("ALTER TABLE shoots ALTER COLUMN priority TYPE smallint", "type"),
        ("ALTER TABLE shoots ALTER priority SET DATA TYPE bigint", "type"),
        ("ALTER TABLE shoots ALTER COLUMN priority SET NOT NULL", "SET NOT NULL"),
        ("ALTER TABLE shoots ALTER COLUMN priority SET DEFAULT 1", "inserts store"),
        ("ALTER TABLE shoots ADD COLUMN priority integer NOT NULL", "without a DEFAULT"),
        ("ALTER TABLE shoots ADD COLUMN code text PRIMARY KEY", "primary key"),
        ("ALTER TABLE shoots ADD CONSTRAINT p CHECK (priority IS NOT NULL) NOT VALID", "constraint"),
        ("ALTER TABLE photos ADD FOREIGN KEY (shoot_id) REFERENCES shoots NOT VALID", "constraint"),
        ("CREATE UNIQUE INDEX shoots_name ON shoots (name)", "unique index"),
        ("CREATE OR REPLACE VIEW recent_shoots AS SELECT id FROM shoots", "replaces"),
        ("UPDATE shoots SET priority = 0", "backfill"),
        ("DELETE FROM photos", "rows"),
        ("TRUNCATE photos", "rows"),
        ("ALTER TABLE shoots OWNER TO someone", "not provably additive"),
        ("ALTER TABLE shoots ADD COLUMN a int, DROP COLUMN name", "drops"),
        ("VACUUM shoots", "not provably additive"),
        ("DO $$ BEGIN ALTER TABLE shoots ADD COLUMN x int; END $$", "not provably additive"),
    ],
)
def test_non_additive_statements_are_refused_with_their_reason(statement, reason):
    problems = expand_problems(f"BEGIN; {statement}; COMMIT;")
    assert len(problems) == 1
    assert problems[0].startswith(statement + ":")
    assert reason in problems[0].split(":", 1)[1]


def test_each_offending_statement_is_named():
    sql = "ALTER TABLE a DROP COLUMN x; CREATE TABLE b (id int); ALTER TABLE c RENAME TO d;"
    problems = expand_problems(sql)
    assert [problem.split(":")[0] for problem in problems] == ["ALTER TABLE a DROP COLUMN x", "ALTER TABLE c RENAME TO d"]


def test_long_statements_are_shortened_in_problems():
    statement = "UPDATE shoots SET name = name || " + " || ".join(["'x'"] * 60)
    (problem,) = expand_problems(statement)
    assert len(problem.split(": ", 1)[0]) <= 120


def test_statements_split_outside_quotes_comments_and_dollar_bodies():
    sql = """INSERT INTO t VALUES ('a;b'); -- c;d
    /* e; f */ CREATE FUNCTION g() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;
    COMMENT ON TABLE "x;y" IS 'it''s; fine'"""
    assert split_statements(sql) == [
        "INSERT INTO t VALUES ('a;b')",
        "CREATE FUNCTION g() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql",
        "COMMENT ON TABLE \"x;y\" IS 'it''s; fine'",
    ]
