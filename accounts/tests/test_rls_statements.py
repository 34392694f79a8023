"""Which statements the row-level security wrapper leaves outside a transaction."""

import pytest

from accounts.rls import runs_outside_a_transaction


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS x ON customers_customer (organization_id)",
        "  create unique index concurrently x ON t (a)",
        "DROP INDEX CONCURRENTLY IF EXISTS x",
        "CREATE  INDEX\n CONCURRENTLY x ON t (a)",
        "VACUUM ANALYZE customers_customer",
        "CREATE DATABASE segmenta_copy",
        "REINDEX INDEX CONCURRENTLY x",
    ],
)
def test_statements_that_cannot_run_in_a_transaction_are_recognised(sql):
    assert runs_outside_a_transaction(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE INDEX x ON t (a)",
        "SELECT * FROM customers_customer",
        "DROP INDEX x",
        b"VACUUM",  # not text: left to the wrapper
    ],
)
def test_other_statements_are_scoped(sql):
    assert not runs_outside_a_transaction(sql)
