"""Writes for customer data, one module per concern (re-exported here)."""

from .customers import customer_update, product_create, product_update
from .importing import (
    import_create,
    import_execute,
    import_from_path,
    import_preview,
    import_set_mapping,
    import_start,
    import_validate,
)
from .orders import order_delete, order_update
from .privacy import (
    customer_erase,
    customer_export_data,
    customer_export_record,
    organization_delete,
    organization_export_start,
)
from .stats import customer_stats_refresh

__all__ = [
    "customer_erase",
    "customer_export_data",
    "customer_export_record",
    "customer_stats_refresh",
    "customer_update",
    "import_create",
    "import_execute",
    "import_from_path",
    "import_preview",
    "import_set_mapping",
    "import_start",
    "import_validate",
    "order_delete",
    "order_update",
    "organization_delete",
    "organization_export_start",
    "product_create",
    "product_update",
]
