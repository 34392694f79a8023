from core.management.base import JsonCommand
from core.partitioning import PartitionError, partition_table


class Command(JsonCommand):
    help = (
        "PostgreSQL only, as the owner role (SEGMENTA_DB_ROLE=owner): convert a tenant "
        "table into one partitioned by HASH (organization_id), primary key "
        "(organization_id, id), with its rows, indexes, unique constraints, foreign keys "
        "(those pointing at it become composite) and row-level security. One "
        "transaction; the table is locked while its rows are copied. Running it on a "
        "partitioned table changes nothing. See docs/database-distribution.md."
    )

    def add_arguments(self, parser):
        parser.add_argument("--table", required=True, help="Table name, e.g. customers_orderline.")
        parser.add_argument(
            "--partitions", type=int, default=8, help="Number of hash partitions (default 8)."
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Print the SQL it would run; change nothing."
        )

    def run(self, *args, **o):
        try:
            return partition_table(o["table"], o["partitions"], dry_run=o["dry_run"])
        except PartitionError as exc:
            from django.core.management.base import CommandError

            raise CommandError(str(exc)) from exc
