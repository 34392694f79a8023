"""A seeded, deterministic random sample of an organisation's customers, for estimates.

The audience preview on a big organisation (`audiences.services.audience_preview`)
works on a sample of the customers and scales its counts up; the readers it uses
(`customers.history.History`, `stores.geo.customers_load`, the audience kinds, the
fairness check and the best channel) take a `CustomerSample` and keep only the
customers in it. Nothing else samples: a saved audience's build counts everyone.

A customer is in the sample when a hash of its id falls below a threshold:

    ((id mod M) * A + offset) mod M < threshold,  M = 2^31 - 1 (a prime)

A is a multiplier of the Lehmer generator for M that spreads neighbouring numbers
far apart (Fishman and Moore's), so the ids picked are spread evenly over any
range of ids (customers imported together are not picked together), and a
customer is in or out whatever its data. The seed turns the circle of hashes by
`offset` = seed * (M / golden ratio) mod M, so two seeds take different arcs of it,
and mostly different customers (a turn by the seed itself would move a handful). The same integer arithmetic (never above
2^61) runs in SQL on SQLite and PostgreSQL — on any table's customer id column,
as one more condition beside the organisation's own, so row-level security and the
tenant managers apply as to any query — and in numpy, so a customer is in the
sample or not in the same way everywhere. The same seed and threshold give the
same sample every time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from django.db.models import BigIntegerField, ExpressionWrapper, F, Value
from django.db.models.lookups import LessThan

MODULUS = 2_147_483_647  # 2^31 - 1, a prime
MULTIPLIER = 742_938_285  # Fishman and Moore's multiplier for 2^31 - 1
TURN = 1_327_217_885  # round(M / golden ratio): successive seeds land far apart
# What is read for a sample (its size, its customers' profile columns, their
# engagement) may be kept this long: an estimate may be a few minutes old, while
# reading it again takes seconds on a million customers. Short, as it holds
# customers' details: the keys also carry `customers_version`, so an erasure (or any
# other write to a customer) makes what was kept unreachable at once.
CACHE_SECONDS = 600


def customers_version(organization_id: int) -> str:
    """The newest `updated_at` of the organisation's customers and the newest mark a
    pipeline run left on them (`CustomerChange`), each read from its index, for cache
    keys: it moves whenever a customer is written, erased ones included, or a run
    changes their segments or predictions."""
    from django.db.models import Max

    from customers.models import Customer, CustomerChange

    stamps = []
    for model, field in ((Customer, "updated_at"), (CustomerChange, "changed_at")):
        newest = model.objects.filter(organization_id=organization_id).aggregate(at=Max(field))
        stamps.append("none" if newest["at"] is None else f"{newest['at']:%Y%m%d%H%M%S%f}")
    return ".".join(stamps)


@dataclass(frozen=True)
class CustomerSample:
    """The customers whose id hash is below `threshold` (out of `MODULUS`).

    `population` is the number of customers the sample stands for (the
    organisation's, erased ones left out) and `size` the number in the sample:
    counts found in the sample are scaled by `population / size`."""

    threshold: int
    seed: int = 0
    population: int = 0
    size: int = 0

    @classmethod
    def of_rate(cls, rate: float, *, seed: int = 0) -> CustomerSample:
        """A sample of about `rate` (0..1] of any set of customers."""
        rate = min(max(float(rate), 0.0), 1.0)
        return cls(threshold=math.ceil(rate * MODULUS), seed=int(seed) % MODULUS)

    @property
    def rate(self) -> float:
        return self.threshold / MODULUS

    @property
    def offset(self) -> int:
        return self.seed * TURN % MODULUS

    @property
    def key(self) -> str:
        """Names the sample in cache keys (with the organisation's id)."""
        return f"{self.seed}-{self.threshold}"

    def cached(self, name: str, organization_id: int, compute, *, extra: str = ""):
        """`compute()`, kept `CACHE_SECONDS` per organisation, sample and
        `customers_version` (so a write to any customer, an erasure included, is
        never answered from what was kept); `extra` names anything else the value
        depends on."""
        from django.core.cache import cache

        key = f"{name}:org{organization_id}:{self.key}:{extra}:{customers_version(organization_id)}"
        found = cache.get(key)
        if found is None:
            found = compute()
            cache.set(key, found, CACHE_SECONDS)
        return found

    @property
    def scale(self) -> float:
        """What a count in the sample is multiplied by to stand for everyone."""
        return self.population / self.size if self.size else 1.0

    # --- the same test three ways -------------------------------------------------------
    def expression(self, field: str = "pk"):
        """The hash of a customer id field, as a query expression."""
        hashed = (F(field) % Value(MODULUS)) * Value(MULTIPLIER) + Value(self.offset)
        return ExpressionWrapper(hashed % Value(MODULUS), output_field=BigIntegerField())

    def lookup(self, field: str = "pk") -> LessThan:
        """A filter keeping the rows whose customer (`field`) is in the sample:
        `queryset.filter(sample.lookup("customer_id"))`."""
        return LessThan(self.expression(field), Value(self.threshold))

    def sql(self, column: str) -> str:
        """The condition for raw SQL run with parameters (`%` doubled), on a column
        named by code, never by input."""
        return (
            f"((({column}) %% {MODULUS}) * {MULTIPLIER} + {self.offset}) %% {MODULUS} "
            f"< {self.threshold}"
        )

    def mask(self, ids) -> np.ndarray:
        """in_sample[i] for the customer ids `ids`."""
        ids = np.asarray(ids, dtype=np.int64)
        return ((ids % MODULUS) * MULTIPLIER + self.offset) % MODULUS < self.threshold


__all__ = ["CACHE_SECONDS", "MODULUS", "MULTIPLIER", "CustomerSample"]
