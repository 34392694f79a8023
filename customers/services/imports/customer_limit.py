"""The plan's limit of customers, as imports and bulk API writes meet it.

Customers are created in two places, both in `kinds`: a customers file or batch
(`CustomersProcessor`), and the unknown customers that orders, events and
feedback name (`CustomerResolver`). Both ask `CustomerBudget.allow(n)` how many
of their `n` new customers may be created; updates of customers already held
never count.

- A file import (`whole_batch=False`) creates new customers up to the limit and
  rejects the rows that would add more (row, field, the `LimitReached` message);
  the rest of the file goes in.
- A bulk API call (`whole_batch=True`) is all or nothing: the budget only
  counts, and the caller refuses the whole call (403 `limit_reached`, rolled
  back) when it would add more customers than are left.

Held customers are counted (erased people are not) with one COUNT the first
time a run meets a new customer; after that the run adds what it created
itself, and counts again only when a chunk would reach the limit. Another
file import writing at the same moment can therefore overshoot the limit by what
it adds between two counts: the limit is a plan's, not a constraint. Bulk API
calls of one organisation that meet new customers are serialised (a
transaction-scoped lock per organisation on PostgreSQL, taken before the count;
SQLite has one writer), so calls made at once cannot pass the limit together.
"""

from __future__ import annotations

from accounts.limits import LimitReached, Limits

_LOCK_SPACE = 0x5E43  # high 32 bits of the advisory lock key (campaigns use 0x5E6D)
ROW_DETAIL = "this row would add a new customer (rows for customers already held still go in)"


class CustomerBudget:
    def __init__(
        self, limits: Limits, *, whole_batch: bool = False, organization_id: int | None = None
    ):
        self.limits = limits
        self.organization_id = organization_id
        self.limit = limits.customers
        self.whole_batch = whole_batch
        self.held: int | None = None  # customers held at the last count
        self._created_then = 0  # this run's new customers at the last count
        self.refused = 0  # new customers refused (file imports)

    @staticmethod
    def count_held() -> int:
        from customers.models import Customer

        return Customer.objects.filter(erased_at__isnull=True).count()

    def allow(self, wanted: int, *, created: int) -> int:
        """How many of `wanted` new customers may be created now; `created` is how
        many this run has created so far (its counts, which a rolled-back chunk
        restores, so the budget needs no bookkeeping of its own)."""
        if wanted <= 0:
            return 0
        if self.held is None:
            if self.whole_batch:
                self._serialise()
            self.held, self._created_then = self.count_held(), created
        elif self.whole_batch:
            return wanted
        elif self.limit - self.held - (created - self._created_then) < wanted:
            # close to the limit: count again (erasures, another writer)
            self.held, self._created_then = self.count_held(), created
        if self.whole_batch:
            return wanted
        left = max(0, self.limit - self.held - (created - self._created_then))
        allowed = min(wanted, left)
        self.refused += wanted - allowed
        return allowed

    def _serialise(self) -> None:
        """Wait for the organisation's other bulk calls that add customers (until
        their transaction ends), so that this one counts what they wrote."""
        from django.db import connections, router

        from customers.models import Customer

        if self.organization_id is None:
            return
        conn = connections[router.db_for_write(Customer)]
        if conn.vendor == "postgresql" and conn.in_atomic_block:
            with conn.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_advisory_xact_lock(%s)",
                    [(_LOCK_SPACE << 32) | int(self.organization_id)],
                )

    def row_error(self) -> LimitReached:
        return LimitReached("customers", self.limits, ROW_DETAIL, fields={"customer_id": "New."})

    def batch_error(self, *, created: int) -> LimitReached | None:
        """For a whole batch that created `created` new customers (in a transaction
        the caller rolls back on this answer): the refusal when that is more than
        were left."""
        if not self.whole_batch or self.held is None:
            return None
        left = max(0, self.limit - self.held)
        if created <= left:
            return None
        return LimitReached(
            "customers",
            self.limits,
            f"this call would add {created:,} new customer{'s' if created != 1 else ''} "
            f"and {left:,} {'is' if left == 1 else 'are'} left; nothing was written",
            fields={"body": "Too many new customers."},
        )
