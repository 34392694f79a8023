"""Store locations (issue 10): where the business meets its customers.

Audiences select customers near a store; local promotions (issue 12) build on
them. A store holds no personal data.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from accounts.tenancy import TenantModel

__all__ = ["Store"]


class Store(TenantModel):
    name = models.CharField(max_length=200)
    address = models.CharField(max_length=500, blank=True)
    latitude = models.FloatField(null=True, blank=True)
    longitude = models.FloatField(null=True, blank=True)
    # postcode beginnings served by the store ("SW1", "750"), for customers with a
    # postcode and no coordinates
    postal_prefixes = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(TenantModel.Meta):
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name
