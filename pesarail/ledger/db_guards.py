"""Database-level guards the ORM cannot express, installed by migration 0002.

PostgreSQL:

* ``ledger_posting_entry_balanced`` / ``ledger_entry_has_postings``: DEFERRABLE INITIALLY
  DEFERRED constraint triggers. At COMMIT they re-check every entry touched in the
  transaction: >= 2 postings, summing to zero, each in the currency of its account and
  its entry. An unbalanced entry cannot be committed, whoever writes the SQL.
* ``ledger_posting_append_only`` / ``ledger_entry_append_only``: postings and entries
  refuse UPDATE and DELETE (TRUNCATE, used to wipe test databases, is not a row event).

SQLite (development): postings and entries refuse UPDATE, and a posting whose currency
differs from its account's is refused on INSERT. SQLite has no deferred triggers, so the
zero-sum rule rests on the service (and the audit) there.

SQLite drops a table's triggers when Django rebuilds the table in a later migration:
such a migration must call :func:`install` again. ``pesarail audit-ledger`` checks the
guards are present.
"""

from __future__ import annotations

from typing import Any

POSTGRES_TRIGGERS = (
    "ledger_posting_entry_balanced",
    "ledger_entry_has_postings",
    "ledger_posting_append_only",
    "ledger_entry_append_only",
)
SQLITE_TRIGGERS = (
    "ledger_posting_no_update",
    "ledger_entry_no_update",
    "ledger_posting_currency",
)

# One query per check: count, sum and currency mismatches of the entry's postings.
POSTGRES_CHECK_FUNCTION = """
    CREATE OR REPLACE FUNCTION ledger_check_entry() RETURNS trigger
    LANGUAGE plpgsql AS $$
    DECLARE
        target varchar;
        n bigint;
        total numeric;
        mismatched bigint;
    BEGIN
        IF TG_TABLE_NAME = 'ledger_posting' THEN
            IF TG_OP = 'DELETE' THEN target := OLD.entry_id; ELSE target := NEW.entry_id; END IF;
        ELSE
            target := NEW.id;
        END IF;
        SELECT count(*), coalesce(sum(p.amount), 0),
               count(*) FILTER (WHERE p.currency <> a.currency OR p.currency <> e.currency)
            INTO n, total, mismatched
            FROM ledger_posting p
            JOIN ledger_account a ON a.id = p.account_id
            JOIN ledger_journalentry e ON e.id = p.entry_id
            WHERE p.entry_id = target;
        IF n < 2 OR total <> 0 THEN
            RAISE EXCEPTION 'ledger: journal entry % is unbalanced (% postings summing to %)',
                target, n, total USING ERRCODE = 'check_violation';
        END IF;
        IF mismatched > 0 THEN
            RAISE EXCEPTION 'ledger: journal entry % has postings in another currency than '
                'their account or entry', target USING ERRCODE = 'check_violation';
        END IF;
        RETURN NULL;
    END
    $$;
"""

POSTGRES_INSTALL = [
    POSTGRES_CHECK_FUNCTION,
    """
    CREATE CONSTRAINT TRIGGER ledger_posting_entry_balanced
        AFTER INSERT OR UPDATE OR DELETE ON ledger_posting
        DEFERRABLE INITIALLY DEFERRED
        FOR EACH ROW EXECUTE FUNCTION ledger_check_entry();
    """,
    """
    CREATE CONSTRAINT TRIGGER ledger_entry_has_postings
        AFTER INSERT ON ledger_journalentry
        DEFERRABLE INITIALLY DEFERRED
        FOR EACH ROW EXECUTE FUNCTION ledger_check_entry();
    """,
    """
    CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'ledger: % is append-only (% refused); correct with a reversing entry',
            TG_TABLE_NAME, TG_OP USING ERRCODE = 'restrict_violation';
    END
    $$;
    """,
    """
    CREATE TRIGGER ledger_posting_append_only BEFORE UPDATE OR DELETE ON ledger_posting
        FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
    """,
    """
    CREATE TRIGGER ledger_entry_append_only BEFORE UPDATE OR DELETE ON ledger_journalentry
        FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
    """,
]

POSTGRES_UNINSTALL = [
    "DROP TRIGGER IF EXISTS ledger_entry_append_only ON ledger_journalentry;",
    "DROP TRIGGER IF EXISTS ledger_posting_append_only ON ledger_posting;",
    "DROP TRIGGER IF EXISTS ledger_entry_has_postings ON ledger_journalentry;",
    "DROP TRIGGER IF EXISTS ledger_posting_entry_balanced ON ledger_posting;",
    "DROP FUNCTION IF EXISTS ledger_refuse_change();",
    "DROP FUNCTION IF EXISTS ledger_check_entry();",
]

SQLITE_INSTALL = [
    """
    CREATE TRIGGER IF NOT EXISTS ledger_posting_no_update BEFORE UPDATE ON ledger_posting
    BEGIN
        SELECT RAISE(ABORT, 'ledger: ledger_posting is append-only; reverse instead');
    END;
    """,
    """
    CREATE TRIGGER IF NOT EXISTS ledger_entry_no_update BEFORE UPDATE ON ledger_journalentry
    BEGIN
        SELECT RAISE(ABORT, 'ledger: ledger_journalentry is append-only');
    END;
    """,
    """
    CREATE TRIGGER IF NOT EXISTS ledger_posting_currency BEFORE INSERT ON ledger_posting
    WHEN NEW.currency <> (SELECT currency FROM ledger_account WHERE id = NEW.account_id)
      OR NEW.currency <> (SELECT currency FROM ledger_journalentry WHERE id = NEW.entry_id)
    BEGIN
        SELECT RAISE(ABORT, 'ledger: posting currency differs from its account or entry');
    END;
    """,
]

SQLITE_UNINSTALL = [f"DROP TRIGGER IF EXISTS {name};" for name in SQLITE_TRIGGERS]


def replace_check_function(schema_editor: Any) -> None:
    """Migration 0003: the one-query version of ``ledger_check_entry()``."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRES_CHECK_FUNCTION, params=None)


def install(schema_editor: Any) -> None:
    vendor = schema_editor.connection.vendor
    statements = {"postgresql": POSTGRES_INSTALL, "sqlite": SQLITE_INSTALL}.get(vendor, [])
    for statement in statements:
        schema_editor.execute(statement, params=None)


def uninstall(schema_editor: Any) -> None:
    vendor = schema_editor.connection.vendor
    statements = {"postgresql": POSTGRES_UNINSTALL, "sqlite": SQLITE_UNINSTALL}.get(vendor, [])
    for statement in statements:
        schema_editor.execute(statement, params=None)


def installed(connection: Any) -> tuple[set[str], set[str]]:
    """(expected, present) trigger names for this connection's database."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgenabled <> 'D' "
                "AND tgname = ANY(%s)", [list(POSTGRES_TRIGGERS)],
            )
            return set(POSTGRES_TRIGGERS), {row[0] for row in cursor.fetchall()}
        if connection.vendor == "sqlite":
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            names = {row[0] for row in cursor.fetchall()}
            return set(SQLITE_TRIGGERS), names & set(SQLITE_TRIGGERS)
    return set(), set()
