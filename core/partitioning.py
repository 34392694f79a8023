"""PostgreSQL declarative partitioning of a tenant table by organisation.

`partition_plan(table, partitions)` reads the catalogue and returns the SQL that
turns an ordinary tenant table into one `PARTITION BY HASH (organization_id)`
with `partitions` partitions (`<table>_p0` …); `partition_table()` runs it in one
transaction. What the conversion does (docs/database-distribution.md):

- the columns, defaults, identity, check constraints and comments are copied
  (`LIKE … INCLUDING ALL EXCLUDING INDEXES`); the identity sequence goes on from
  where the old one stood, so `id` stays unique across partitions;
- the primary key becomes (organization_id, id): PostgreSQL wants the partition
  key in every primary key and unique constraint. Django keeps `id` as the model's
  pk; every query the app role makes is pruned to one partition by the
  row-level security qual (`organization_id = current_setting(…)`), so a lookup
  by `id` alone still uses that key's index;
- the other unique constraints and indexes are created again with their names
  (a unique constraint without organization_id cannot exist on a partitioned
  table: such a table is refused, see `blockers()`);
- foreign keys from the table are kept (composite when they point at a
  partitioned table); foreign keys pointing at it become composite,
  (organization_id, col) → (organization_id, id), which also checks that a row
  and the row it names belong to the same organisation;
- row-level security (ENABLE + FORCE and every policy, as `accounts/rls.py` made
  them) is put on the parent, which governs every query through it, and on each
  partition too, so a partition reached by name is no wider; grants are copied;
- the rows are copied (`INSERT … SELECT`) under an ACCESS EXCLUSIVE lock: the
  table is unavailable for the copy (measured in the doc) — a maintenance step.

PostgreSQL only, run by the role that owns the tables (SEGMENTA_DB_ROLE=owner).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from django.db import connections, transaction

KEY = "organization_id"
_ACTIONS = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}
MAX_PARTITIONS = 1024
# The tables whose rows grow with an organisation's customers (rows at 1M customers:
# docs/database-distribution.md): the ones to partition, and to distribute first.
LARGE_TABLES = (
    "customers_customer",
    "customers_order",
    "customers_orderline",
    "customers_event",
    "customers_consentchange",
    "segmentation_segmentmembership",
    "segmentation_customerprediction",
    "recommendations_customerrecommendation",
    "audiences_audiencemember",
    "campaigns_outboxmessage",
    "offers_offerrecipient",
    "loyalty_loyaltyaccount",
)
# Large too, but a unique key without organization_id stands in the way (the doc says
# what would change): campaigns_delivery (the tracking token).


class PartitionError(Exception):
    """The table cannot be converted (the message says why)."""


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class ForeignKey:
    name: str
    table: str
    columns: list[str]
    ref_table: str
    ref_columns: list[str]
    deferrable: bool
    deferred: bool
    on_delete: str
    on_update: str

    def composite(self) -> bool:
        return self.columns[0] == KEY and self.ref_columns[0] == KEY

    def add_sql(self, *, composite: bool) -> str:
        cols, refs = list(self.columns), list(self.ref_columns)
        if composite and not self.composite():
            cols, refs = [KEY, *cols], [KEY, *refs]
        on_delete = _ACTIONS[self.on_delete]
        if composite and self.on_delete in "nd":
            # Only the row's own column is cleared, never its organisation (PG 15+).
            on_delete += f" ({', '.join(q(c) for c in self.columns if c != KEY)})"
        timing = ""
        if self.deferrable:
            timing = " DEFERRABLE INITIALLY " + ("DEFERRED" if self.deferred else "IMMEDIATE")
        return (
            f"ALTER TABLE {q(self.table)} ADD CONSTRAINT {q(self.name)} FOREIGN KEY "
            f"({', '.join(q(c) for c in cols)}) REFERENCES {q(self.ref_table)} "
            f"({', '.join(q(c) for c in refs)}) ON DELETE {on_delete} "
            f"ON UPDATE {_ACTIONS[self.on_update]}{timing}"
        )


@dataclass
class Plan:
    table: str
    partitions: int
    statements: list[str]
    rows: int
    incoming: list[str] = field(default_factory=list)
    outgoing: list[str] = field(default_factory=list)
    indexes: list[str] = field(default_factory=list)
    policies: list[str] = field(default_factory=list)


def _rows(cursor, sql: str, params=()) -> list[tuple]:
    cursor.execute(sql, params)
    return cursor.fetchall()


_FK_SQL = """
SELECT con.conname, con.conrelid::regclass::text, con.confrelid::regclass::text,
  ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(n, o)
        JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.o),
  ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(n, o)
        JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.o),
  con.condeferrable, con.condeferred, con.confdeltype, con.confupdtype
FROM pg_constraint con
WHERE con.contype = 'f' AND con.conparentid = 0 AND {side} = %s::regclass
ORDER BY con.conname
"""


def foreign_keys(cursor, table: str, *, incoming: bool) -> list[ForeignKey]:
    """Foreign keys pointing at `table` (incoming) or from it (outgoing), the
    parents' only (not the copies PostgreSQL keeps on each partition)."""
    side = "con.confrelid" if incoming else "con.conrelid"
    return [
        ForeignKey(r[0], r[1], list(r[3]), r[2], list(r[4]), r[5], r[6], r[7], r[8])
        for r in _rows(cursor, _FK_SQL.format(side=side), [table])
    ]


def relkind(cursor, table: str) -> str | None:
    found = _rows(
        cursor,
        "SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND c.relname = %s",
        [table],
    )
    return found[0][0] if found else None


def columns(cursor, table: str) -> list[str]:
    """The table's columns, but its generated ones (computed again as rows are
    copied: no INSERT may name them)."""
    return [
        r[0]
        for r in _rows(
            cursor,
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
            "AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
            [table],
        )
    ]


def unique_keys(cursor, table: str) -> list[tuple[str, str, list[str], bool]]:
    """(name, kind, columns, is constraint) of the primary key, unique constraints
    and unique indexes of `table` (parents only)."""
    return [
        (r[0], r[1], list(r[2]), r[3])
        for r in _rows(
            cursor,
            """
            SELECT i.indexrelid::regclass::text,
              CASE WHEN i.indisprimary THEN 'primary key' WHEN con.oid IS NOT NULL
                   THEN 'unique constraint' ELSE 'unique index' END,
              ARRAY(SELECT coalesce(a.attname, '(expression)') FROM unnest(i.indkey)
                    WITH ORDINALITY k(n, o) LEFT JOIN pg_attribute a
                    ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o),
              con.oid IS NOT NULL
            FROM pg_index i LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid
                 AND con.conrelid = i.indrelid
            WHERE i.indrelid = %s::regclass AND i.indisunique
            ORDER BY 1
            """,
            [table],
        )
    ]


def blockers(cursor, table: str) -> list[str]:
    """Why `table` cannot be partitioned by organisation (empty: it can)."""
    kind = relkind(cursor, table)
    if kind is None:
        return [f"There is no table {table}."]
    if kind == "p":
        return []
    if kind != "r":
        return [f"{table} is not an ordinary table."]
    reasons: list[str] = []
    if KEY not in columns(cursor, table):
        return [f"{table} has no {KEY} column: it is not a tenant table."]
    if "id" not in columns(cursor, table):
        reasons.append(f"{table} has no id column.")
    for name, kind_, cols, _ in unique_keys(cursor, table):
        if kind_ != "primary key" and KEY not in cols:
            reasons.append(
                f"{table}: the {kind_} {name} ({', '.join(cols)}) does not include {KEY}."
            )
    for fk in foreign_keys(cursor, table, incoming=True):
        if fk.ref_columns != ["id"] and not fk.composite():
            reasons.append(f"{fk.table}.{fk.name} points at {table}({', '.join(fk.ref_columns)}).")
        elif KEY not in columns(cursor, fk.table):
            reasons.append(f"{fk.table} points at {table} ({fk.name}) but has no {KEY}.")
    triggers = _rows(
        cursor,
        "SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal",
        [table],
    )
    if triggers:
        reasons.append(f"{table} has triggers ({', '.join(t[0] for t in triggers)}).")
    inherits = _rows(
        cursor, "SELECT 1 FROM pg_inherits WHERE inhrelid = %s::regclass", [table]
    ) or _rows(cursor, "SELECT 1 FROM pg_inherits WHERE inhparent = %s::regclass", [table])
    if inherits:
        reasons.append(f"{table} takes part in table inheritance.")
    owners = (
        {table}
        | {fk.table for fk in foreign_keys(cursor, table, incoming=True)}
        | {fk.ref_table for fk in foreign_keys(cursor, table, incoming=False)}
    )
    for name in sorted(owners):
        allowed = _rows(
            cursor,
            "SELECT pg_has_role(current_user, relowner, 'USAGE') OR "
            "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user) "
            "FROM pg_class WHERE oid = %s::regclass",
            [name],
        )[0][0]
        if not allowed:
            reasons.append(
                f"The role connected does not own {name}: run as the owner "
                "(SEGMENTA_DB_ROLE=owner with DATABASE_OWNER_URL)."
            )
    return reasons


def _policies(cursor, table: str) -> list[str]:
    """CREATE POLICY statements (without the table name) for `table`'s policies."""
    out = []
    for name, permissive, roles, cmd, qual, check in _rows(
        cursor,
        "SELECT policyname, permissive, roles, cmd, qual, with_check FROM pg_policies "
        "WHERE schemaname = current_schema() AND tablename = %s ORDER BY policyname",
        [table],
    ):
        to = ", ".join("PUBLIC" if r == "public" else q(r) for r in roles)
        text = f"AS {permissive} FOR {cmd} TO {to}"
        if qual is not None:
            text += f" USING ({qual})"
        if check is not None:
            text += f" WITH CHECK ({check})"
        out.append((name, text))
    return out


def partition_plan(cursor, table: str, partitions: int = 8) -> Plan | None:
    """The statements that convert `table`; None when it is partitioned already.
    Raises PartitionError when it cannot be converted."""
    if not 2 <= partitions <= MAX_PARTITIONS:
        raise PartitionError(f"--partitions must be from 2 to {MAX_PARTITIONS}.")
    reasons = blockers(cursor, table)
    if reasons:
        raise PartitionError(" ".join(reasons))
    if relkind(cursor, table) == "p":
        return None
    parent = f"{table[:50]}__part"
    names = [f"{table}_p{i}" for i in range(partitions)]
    if any(len(n) > 63 for n in names):
        raise PartitionError(f"{table}: partition names would be longer than 63 characters.")
    cols = ", ".join(q(c) for c in columns(cursor, table))
    incoming = foreign_keys(cursor, table, incoming=True)
    outgoing = [fk for fk in foreign_keys(cursor, table, incoming=False) if fk.ref_table != table]
    pkey = next(n for n, kind, _, _ in unique_keys(cursor, table) if kind == "primary key")
    constraints = _rows(
        cursor,
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype IN ('u', 'x') ORDER BY conname",
        [table],
    )
    indexes = _rows(
        cursor,
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "WHERE i.indrelid = %s::regclass AND NOT EXISTS (SELECT 1 FROM pg_constraint c "
        "WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid) ORDER BY 1",
        [table],
    )
    security = _rows(
        cursor,
        "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = %s::regclass",
        [table],
    )[0]
    policies = _policies(cursor, table)
    grants = _rows(
        cursor,
        "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END, "
        "string_agg(a.privilege_type, ', ' ORDER BY a.privilege_type) "
        "FROM pg_class c, aclexplode(c.relacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee "
        "WHERE c.oid = %s::regclass AND a.grantee <> c.relowner GROUP BY 1 ORDER BY 1",
        [table],
    )
    sequence = _rows(cursor, "SELECT pg_get_serial_sequence(%s, 'id')", [q(table)])[0][0]
    rows = _rows(cursor, "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [table])
    partitioned = {t: relkind(cursor, t) == "p" for t in {fk.ref_table for fk in outgoing}}
    touched = sorted(({fk.table for fk in incoming} | {fk.ref_table for fk in outgoing}) - {table})
    forced = [
        r[0]
        for r in _rows(
            cursor,
            "SELECT c.relname FROM pg_class c WHERE c.relforcerowsecurity AND (c.relname = ANY(%s) "
            "OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent::regclass::text = ANY(%s))) "
            "ORDER BY 1",
            [touched, touched],
        )
    ]

    s: list[str] = [f"LOCK TABLE {q(table)} IN ACCESS EXCLUSIVE MODE"]
    s += [f"ALTER TABLE {q(fk.table)} DROP CONSTRAINT {q(fk.name)}" for fk in incoming]
    s.append(
        f"CREATE TABLE {q(parent)} (LIKE {q(table)} INCLUDING ALL EXCLUDING INDEXES) "
        f"PARTITION BY HASH ({q(KEY)})"
    )
    s += [
        f"CREATE TABLE {q(name)} PARTITION OF {q(parent)} "
        f"FOR VALUES WITH (MODULUS {partitions}, REMAINDER {i})"
        for i, name in enumerate(names)
    ]
    # Under FORCE the owner sees no tenant row: the copy would copy nothing, and
    # PostgreSQL validates a new foreign key with one query run as the owner under the
    # policies of both tables (rows hidden on the referencing side pass unchecked,
    # rows hidden on the referenced side fail). FORCE is lifted, inside this
    # transaction only, from every table the keys touch, and put back below.
    s += [f"ALTER TABLE {q(t)} NO FORCE ROW LEVEL SECURITY" for t in [table, *forced]]
    s.append(
        f"INSERT INTO {q(parent)} ({cols}) OVERRIDING SYSTEM VALUE SELECT {cols} FROM {q(table)}"  # noqa: S608
    )
    if sequence:
        s.append(
            f"SELECT setval(pg_get_serial_sequence('{q(parent)}', 'id'), last_value, is_called) "  # noqa: S608
            f"FROM {sequence}"
        )
    s.append(f"DROP TABLE {q(table)}")
    s.append(f"ALTER TABLE {q(parent)} RENAME TO {q(table)}")
    if sequence:
        seq_name = sequence.split(".")[-1].strip('"')
        s.append(
            "DO $$ BEGIN EXECUTE format('ALTER SEQUENCE %s RENAME TO %I', "
            f"pg_get_serial_sequence('{q(table)}', 'id'), '{seq_name}'); END $$"
        )
    s.append(f"ALTER TABLE {q(table)} ADD CONSTRAINT {q(pkey)} PRIMARY KEY ({q(KEY)}, id)")
    s += [f"ALTER TABLE {q(table)} ADD CONSTRAINT {q(n)} {d}" for n, d in constraints]
    s += [d for _, d in indexes]
    s += [fk.add_sql(composite=partitioned[fk.ref_table]) for fk in outgoing]
    s += [fk.add_sql(composite=True) for fk in incoming]
    for target in [table, *names]:
        if security[0]:
            s.append(f"ALTER TABLE {q(target)} ENABLE ROW LEVEL SECURITY")
        if security[1]:
            s.append(f"ALTER TABLE {q(target)} FORCE ROW LEVEL SECURITY")
        s += [f"CREATE POLICY {q(n)} ON {q(target)} {text}" for n, text in policies]
        s += [f"GRANT {privs} ON {q(target)} TO {who}" for who, privs in grants]
    s += [f"ALTER TABLE {q(t)} FORCE ROW LEVEL SECURITY" for t in forced]
    s.append(f"ANALYZE {q(table)}")
    return Plan(
        table=table,
        partitions=partitions,
        statements=s,
        rows=max(rows[0][0], 0),
        incoming=[f"{fk.table}.{fk.name}" for fk in incoming],
        outgoing=[f"{fk.table}.{fk.name}" for fk in outgoing],
        indexes=[n for n, _ in indexes] + [n for n, _ in constraints],
        policies=[n for n, _ in policies],
    )


def partition_table(
    table: str, partitions: int = 8, *, using: str = "default", dry_run: bool = False
) -> dict:
    """Convert `table` (one transaction); a summary of what was done."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        raise PartitionError("Partitioning needs PostgreSQL.")
    started = time.monotonic()
    with transaction.atomic(using=using), connection.cursor() as cursor:
        plan = partition_plan(cursor, table, partitions)
        if plan is None:
            count = _rows(
                cursor, "SELECT count(*) FROM pg_inherits WHERE inhparent = %s::regclass", [table]
            )[0][0]
            return {"table": table, "status": "already partitioned", "partitions": count}
        if not dry_run:
            # Deferred foreign key checks still pending in this transaction (none in
            # the command's own) would stop ALTER TABLE: run them now.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            for statement in plan.statements:
                cursor.execute(statement)
                if statement.startswith("INSERT INTO"):
                    plan.rows = cursor.rowcount
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    result = {
        "table": table,
        "status": "planned" if dry_run else "partitioned",
        "partitions": plan.partitions,
        "rows": plan.rows,
        "foreign_keys_rebuilt": plan.incoming,
        "foreign_keys_kept": plan.outgoing,
        "indexes": plan.indexes,
        "policies": plan.policies,
        "seconds": round(time.monotonic() - started, 2),
    }
    if dry_run:
        result["sql"] = plan.statements
    return result


def partitioned_tables(using: str = "default") -> dict[str, int]:
    """{partitioned table: number of partitions} in the current schema."""
    with connections[using].cursor() as cursor:
        return dict(
            _rows(
                cursor,
                "SELECT c.relname, count(i.inhrelid) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "LEFT JOIN pg_inherits i ON i.inhparent = c.oid "
                "WHERE c.relkind = 'p' AND n.nspname = current_schema() GROUP BY c.relname",
            )
        )
