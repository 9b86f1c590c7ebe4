"""Is an expand step backward-compatible for the version still running? Pure: it reads
the SQL the migration tool would run (its offline mode) and never a database.

An expand runs while the old version serves, so it may only add what the old version
ignores. The check is an allow-list: a statement passes only when it is recognised as
additive, and anything else is refused as "not provably additive" — a false refusal
costs a release author a split migration, a false pass costs production.

Allowed:
- transaction control (BEGIN, COMMIT), session SET, COMMENT ON, GRANT;
- CREATE TABLE, SEQUENCE, TYPE, SCHEMA, VIEW, EXTENSION, FUNCTION (never OR REPLACE:
  that replaces something the old version may use), and anything at all on a table
  created earlier in the same step (the old version does not know it);
- CREATE INDEX, concurrently or not: an index changes no query's result. Without
  CONCURRENTLY it blocks writes while it builds, which the performance check sees;
  CONCURRENTLY cannot run inside the migration's transaction at all;
- ALTER TABLE ... ADD COLUMN nullable, or NOT NULL with a DEFAULT (the old version's
  inserts, which omit it, get the default); VALIDATE CONSTRAINT (checks existing rows
  against a constraint already enforced on writes, so no write changes outcome);
  ALTER TYPE ... ADD VALUE;
- INSERT (adds rows); writes to the migration tool's own version table.

Refused on an existing table:
- every DROP (table, column, constraint, index, default, NOT NULL): an expand adds,
  removals belong to the contract, after the old version is retired. Even dropping an
  index or a constraint takes away a guarantee or a query plan the old version has;
- RENAME, ALTER COLUMN ... TYPE (even a widening cannot be told from the SQL alone),
  SET NOT NULL, SET DEFAULT, ADD COLUMN ... NOT NULL without DEFAULT, ADD COLUMN
  ... PRIMARY KEY;
- ADD CONSTRAINT, even NOT VALID, and CREATE UNIQUE INDEX: NOT VALID skips the
  existing rows only, new writes are checked, so the old version's inserts can be
  refused (`CHECK (priority IS NOT NULL) NOT VALID` breaks a version that does not
  write priority);
- UPDATE, DELETE, TRUNCATE: they change rows the old version reads (a backfill is
  its own step).
"""

from __future__ import annotations

import re

VERSION_TABLES = frozenset({"alembic_version"})
"""Migration tools' bookkeeping tables, whose writes are not schema changes."""

STATEMENT_SHOWN = 120

_IDENTIFIER = r'(?:"[^"]+"|[A-Z_][A-Z0-9_$]*)(?:\s*\.\s*(?:"[^"]+"|[A-Z_][A-Z0-9_$]*))*'
_ALWAYS_ALLOWED = re.compile(
    r"^(BEGIN|COMMIT|START TRANSACTION|SET\s|COMMENT ON\s|GRANT\s|INSERT INTO\s"
    r"|CREATE (TABLE|SEQUENCE|TYPE|SCHEMA|VIEW|EXTENSION|FUNCTION)\b)"
)
_CREATE_TABLE = re.compile(rf"^CREATE TABLE (?:IF NOT EXISTS )?({_IDENTIFIER})")
_CREATE_INDEX = re.compile(rf"^CREATE (UNIQUE )?INDEX\b.*?\bON (?:ONLY )?({_IDENTIFIER})")
_ALTER_TABLE = re.compile(rf"^ALTER TABLE (?:IF EXISTS )?(?:ONLY )?({_IDENTIFIER}) (.*)$")
_VERSION_WRITE = re.compile(rf"^(?:UPDATE|DELETE FROM) ({_IDENTIFIER})")
_TABLE_CONSTRAINT = re.compile(r"^ADD (CONSTRAINT|PRIMARY KEY|UNIQUE|FOREIGN KEY|CHECK|EXCLUDE)\b")
_ADD_COLUMN = re.compile(r"^ADD (?:COLUMN )?(?:IF NOT EXISTS )?")


def expand_problems(sql: str) -> list[str]:
    """Why running `sql` while the old version serves could break it, one line per
    offending statement (naming it); empty when every statement is additive."""
    created: set[str] = set()
    problems = []
    for statement in split_statements(sql):
        shape = _shape(statement)
        if match := _CREATE_TABLE.match(shape):
            created.add(_table_name(match.group(1)))
        why = _why_not_additive(shape, created)
        if why:
            problems.append(f"{_shown(statement)}: {why}")
    return problems


def _why_not_additive(shape: str, created: set[str]) -> str | None:
    if match := _CREATE_INDEX.match(shape):
        return _index_problem(match.group(1) is not None, _table_name(match.group(2)), created)
    if match := _ALTER_TABLE.match(shape):
        if _table_name(match.group(1)) in created:
            return None
        return next(filter(None, map(_alter_action_problem, _top_level_parts(match.group(2)))), None)
    if match := _VERSION_WRITE.match(shape):
        return None if _table_name(match.group(1)) in VERSION_TABLES | created else _data_problem(shape)
    if re.match(r"^CREATE OR REPLACE\b", shape):
        return "replaces an object the running version may use"
    if re.match(r"^ALTER TYPE \S+ ADD VALUE\b", shape):
        return None
    if _ALWAYS_ALLOWED.match(shape):
        return None
    return _refused_statement(shape)


def _index_problem(unique: bool, table: str, created: set[str]) -> str | None:
    if unique and table not in created:
        return "a unique index on an existing table can refuse the running version's writes"
    return None


def _alter_action_problem(action: str) -> str | None:
    """Why one action of an ALTER TABLE on an existing table is not additive."""
    if action.startswith("VALIDATE CONSTRAINT "):
        return None
    if action.startswith("DROP "):
        return "drops what the running version may use (drops belong to the contract)"
    if action.startswith("RENAME "):
        return "renames what the running version uses by name"
    if _TABLE_CONSTRAINT.match(action):
        return "a new constraint is checked on every new write (even NOT VALID) and can refuse the running version's"
    if _ADD_COLUMN.match(action):
        return _add_column_problem(action)
    if action.startswith("ALTER "):
        return _alter_column_problem(action)
    return "not provably additive"


def _add_column_problem(action: str) -> str | None:
    if "PRIMARY KEY" in action:
        return "a primary key column needs a unique non-null value in every existing and new row"
    if re.search(r"\bNOT NULL\b", action) and not re.search(r"\bDEFAULT\b", action):
        return "a NOT NULL column without a DEFAULT refuses the running version's inserts, which omit it"
    return None


def _alter_column_problem(action: str) -> str:
    if re.search(r"\b(TYPE|SET DATA TYPE)\b", action):
        return "changes a column's type under the running version"
    if re.search(r"\bSET NOT NULL\b", action):
        return "SET NOT NULL refuses the running version's writes that leave the column empty"
    if re.search(r"\bDROP (DEFAULT|NOT NULL)\b", action):
        return "drops what the running version relies on (drops belong to the contract)"
    if re.search(r"\bSET DEFAULT\b", action):
        return "changes what the running version's inserts store"
    return "not provably additive"


def _data_problem(shape: str) -> str:
    verb = shape.split(" ", 1)[0]
    return f"{verb} changes rows the running version reads (a backfill is its own step)"


def _refused_statement(shape: str) -> str:
    if shape.startswith("DROP "):
        return "drops what the running version may use (drops belong to the contract)"
    if re.match(r"^(TRUNCATE|DELETE|UPDATE)\b", shape):
        return _data_problem(shape)
    if re.match(r"^ALTER \S+ .*\bRENAME\b", shape):
        return "renames what the running version uses by name"
    return "not provably additive"


def _top_level_parts(text: str) -> list[str]:
    """The comma-separated actions of an ALTER TABLE, commas inside parentheses kept."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:index].strip())
            start = index + 1
    parts.append(text[start:].strip())
    return [part for part in parts if part]


def split_statements(sql: str) -> list[str]:
    """The statements of `sql`, comments removed, split on the semicolons outside
    quotes, quoted identifiers and dollar-quoted bodies."""
    statements, current, index = [], [], 0
    while index < len(sql):
        token, index = _next_token(sql, index)
        if token == ";":
            statements.append("".join(current).strip())
            current = []
        else:
            current.append(token)
    statements.append("".join(current).strip())
    return [statement for statement in statements if statement]


_TOKEN = re.compile(
    r"--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|(\$[A-Za-z_0-9]*\$).*?\1|[^-/'\"$;]+|.",
    re.DOTALL,
)


def _next_token(sql: str, index: int) -> tuple[str, int]:
    """The token at `index` (a comment becomes a space) and where the next starts."""
    match = _TOKEN.match(sql, index)
    token = match.group()
    if token.startswith("--") or token.startswith("/*"):
        token = " "
    return token, match.end()


def _shape(statement: str) -> str:
    """The statement to match rules against: literals blanked (a DEFAULT 'NOT NULL'
    is no constraint), whitespace collapsed, upper case."""
    blanked = re.sub(r"'(?:[^']|'')*'|(\$[A-Za-z_0-9]*\$).*?\1", "''", statement, flags=re.DOTALL)
    return re.sub(r"\s+", " ", blanked).strip().upper()


def _table_name(identifier: str) -> str:
    """The table's own name, without schema or quotes, for comparing occurrences."""
    return re.split(r"\s*\.\s*", identifier)[-1].strip('"').lower()


def _shown(statement: str) -> str:
    flat = re.sub(r"\s+", " ", statement)
    return flat if len(flat) <= STATEMENT_SHOWN else flat[: STATEMENT_SHOWN - 1] + "…"
