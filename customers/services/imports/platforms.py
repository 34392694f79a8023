"""Shop systems' own export layouts, recognised by their columns and read without a map.

Each `Layout` names the columns that identify it, which of its columns is which
canonical field, and what has to be done to a row before it means what the
canonical fields say (`prepare`): Shopify's product title only on a product's
first row, Square's date, time and time zone in three columns, WooCommerce's
order lines packed into `line_item_N` cells, Stripe's partial refunds, Etsy's
unpaid orders. `docs/import.md` ("Shop exports recognised") describes each one.

Headers are compared normalised (lower case, every run of other characters
turned into `_`), so `Created date (UTC)` is `created_date_utc`.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from .values import parse_decimal

Row = tuple[dict[str, str], dict[str, str]]  # (canonical fields, other columns)
MONTH_FIRST = "month_first"  # as in dates.py


def normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


@dataclass
class RowContext:
    """What a layout's `prepare` sees of one row, and what it remembers across rows."""

    raw: dict[str, str]  # normalised header -> the cell, for every column
    state: dict = field(default_factory=dict)  # kept for the whole file

    def get(self, name: str) -> str:
        return (self.raw.get(name) or "").strip()


@dataclass(frozen=True)
class Layout:
    key: str
    label: str  # what a person reads: "Shopify orders"
    kind: str
    required: frozenset[str]
    columns: dict[str, str]  # normalised header -> canonical field (first in the file wins)
    any_of: tuple[frozenset[str], ...] = ()  # one of each set must be present too
    date_orders: dict[str, str] = field(default_factory=dict)  # field -> MONTH_FIRST
    prepare: Callable[[dict, dict, RowContext], list[Row]] | None = None

    def matches(self, kind: str, names: set[str]) -> bool:
        return (
            kind == self.kind
            and self.required <= names
            and all(names & group for group in self.any_of)
        )


def _full_name(rec: dict, *names: str, row: RowContext) -> None:
    """A buyer's full name ("Ada Lane") as first and last name, unless the row
    gives them apart."""
    if rec.get("first_name") or rec.get("last_name"):
        return
    full = next((row.get(n) for n in names if row.get(n)), "")
    first, _, last = full.partition(" ")
    rec["first_name"], rec["last_name"] = first.strip(), last.strip()


def _money(text: str) -> Decimal | None:
    try:
        return parse_decimal(text) if text.strip() else None
    except ValueError:
        return None


def _fmt(value: Decimal) -> str:
    return f"{value:f}"


# --- Shopify ------------------------------------------------------------------------


def _shopify_order(rec: dict, attrs: dict, row: RowContext) -> list[Row]:
    # A cancelled order keeps its financial status (often "refunded" or "voided");
    # "Cancelled at" is on the order's first row only, like the status.
    if row.get("cancelled_at"):
        rec["status"] = "cancelled"
    _full_name(rec, "billing_name", "shipping_name", row=row)
    # A partial refund (Refunded Amount, on the order's first row) is money given
    # back: a line of its own takes it off what was paid. A fully refunded order is
    # no purchase at all (its status says so).
    refunded = _money(row.get("refunded_amount"))
    status = rec.get("status", "").strip().lower().replace("_", " ")
    if refunded and refunded > 0 and status not in ("refunded", "voided", "cancelled"):
        refund = {
            **rec,
            "sku": "",
            "product_name": "Partial refund",
            "quantity": "-1",
            "unit_price": f"{refunded:f}",
            "discount_code": "",
            "discount_amount": "",
            "shipping_amount": "",
            "tax_amount": "",
        }
        return [(rec, attrs), (refund, attrs)]
    return [(rec, attrs)]


def _shopify_product(rec: dict, attrs: dict, row: RowContext) -> list[Row]:
    """Shopify writes a product's title, type and vendor on its first row only; the
    other variants and the extra images of the product have just the handle."""
    handle = row.get("handle")
    carried = row.state.setdefault("products", {})
    if handle:
        if rec.get("name"):
            carried[handle] = (rec.get("name", ""), rec.get("category", ""))
        else:
            name, category = carried.get(handle, ("", ""))
            rec["name"] = name
            if not rec.get("category"):
                rec["category"] = category
    if not rec.get("sku"):
        options = [
            row.get(f"option{i}_value")
            for i in (1, 2, 3)
            if row.get(f"option{i}_value") and row.get(f"option{i}_value") != "Default Title"
        ]
        if not options and not rec.get("price"):
            return []  # a row carrying only one more image of the product
        rec["sku"] = "/".join([handle, *options]) if handle else ""
    return [(rec, attrs)]


SHOPIFY_ORDERS = Layout(
    key="shopify_orders",
    label="Shopify orders",
    kind="orders",
    required=frozenset({"name", "lineitem_quantity", "lineitem_name"}),
    columns={
        "name": "order_id",
        "email": "email",
        "billing_phone": "phone",  # the buyer's; "Phone" is often blank
        "shipping_phone": "phone",
        "phone": "phone",
        "created_at": "ordered_at",
        "lineitem_quantity": "quantity",
        "lineitem_name": "product_name",
        "lineitem_price": "unit_price",
        "lineitem_sku": "sku",
        "currency": "currency",
        "financial_status": "status",
        "accepts_marketing": "accepts_email",
        "accepts_email_marketing": "accepts_email",
        "accepts_sms_marketing": "accepts_sms",
        "discount_code": "discount_code",
        "discount_amount": "discount_amount",
        # the order's, on its first row only (as its status and discount)
        "shipping": "shipping_amount",
        "taxes": "tax_amount",
        "source": "channel",
        "location": "location",
        "billing_city": "city",
        "billing_province": "region",
        "billing_country": "country",
        "billing_zip": "postal_code",
        "shipping_city": "city",
        "shipping_province": "region",
        "shipping_country": "country",
        "shipping_zip": "postal_code",
    },
    prepare=_shopify_order,
)
SHOPIFY_CUSTOMERS = Layout(
    key="shopify_customers",
    label="Shopify customers",
    kind="customers",
    required=frozenset({"first_name", "last_name", "email"}),
    any_of=(
        frozenset({"accepts_email_marketing", "accepts_marketing"}),
        frozenset({"total_spent", "total_orders"}),
    ),
    columns={
        "customer_id": "customer_id",
        "first_name": "first_name",
        "last_name": "last_name",
        "email": "email",
        "accepts_email_marketing": "accepts_email",
        "accepts_marketing": "accepts_email",
        "accepts_sms_marketing": "accepts_sms",
        "phone": "phone",
        "default_address_phone": "phone",
        "city": "city",
        "default_address_city": "city",
        "province_code": "region",
        "province": "region",
        "default_address_province_code": "region",
        "country_code": "country",
        "country": "country",
        "default_address_country_code": "country",
        "zip": "postal_code",
        "default_address_zip": "postal_code",
        # the shop's figures: the customer's until their orders are imported
        "total_orders": "orders_count",
        "total_spent": "total_spent",
        # Shopify's own export has no consent time; exports made through its API
        # (apps, or a copy with the column added) name it so
        "email_marketing_consent_updated_at": "email_consent_at",
        "accepts_email_marketing_updated_at": "email_consent_at",
        "accepts_marketing_updated_at": "email_consent_at",
        "email_marketing_updated_at": "email_consent_at",
        "sms_marketing_consent_updated_at": "sms_consent_at",
        "accepts_sms_marketing_updated_at": "sms_consent_at",
        "sms_marketing_updated_at": "sms_consent_at",
    },
)
SHOPIFY_PRODUCTS = Layout(
    key="shopify_products",
    label="Shopify products",
    kind="products",
    required=frozenset({"handle", "title", "variant_sku", "variant_price"}),
    columns={
        "variant_sku": "sku",
        "title": "name",
        "type": "category",  # the shop's own type (Product Category is Google's taxonomy)
        "variant_price": "price",
        "image_src": "image_url",
    },
    prepare=_shopify_product,
)


# --- Etsy ---------------------------------------------------------------------------


def _etsy_shipping(rec: dict, row: RowContext) -> None:
    """What the buyer paid for shipping: the charge less Etsy's `Shipping Discount`."""
    shipping, off = _money(rec.get("shipping_amount", "")), _money(row.get("shipping_discount"))
    if shipping is not None and off:
        rec["shipping_amount"] = _fmt(max(shipping - abs(off), Decimal(0)))


def _etsy_items(rec: dict, attrs: dict, row: RowContext) -> list[Row]:
    # Each item row carries its own share of the coupon (Discount Amount).
    if not row.get("date_paid"):
        rec["status"] = "pending"
    _full_name(rec, "ship_name", row=row)
    # Order Shipping and Order Sales Tax are the order's, written on each of its
    # item rows: kept on its first row only (an order's rows are added up)
    seen = row.state.setdefault("etsy_orders", set())
    if rec.get("order_id") in seen:
        rec["shipping_amount"] = rec["tax_amount"] = ""
    else:
        seen.add(rec.get("order_id"))
        _etsy_shipping(rec, row)
    return [(rec, attrs)]


def _etsy_orders(rec: dict, attrs: dict, row: RowContext) -> list[Row]:
    _etsy_shipping(rec, row)
    if not rec.get("customer_id"):
        rec["customer_id"] = row.get("buyer_user_id")
    _full_name(rec, "full_name", row=row)
    return [(rec, attrs)]


_ETSY_ADDRESS = {
    "ship_city": "city",
    "ship_state": "region",
    "ship_country": "country",
    "ship_zipcode": "postal_code",
}
ETSY_ORDER_ITEMS = Layout(
    key="etsy_order_items",
    label="Etsy order items",
    kind="orders",
    required=frozenset({"sale_date", "item_name", "buyer", "order_id", "transaction_id"}),
    columns={
        "order_id": "order_id",
        "sale_date": "ordered_at",
        "item_name": "product_name",
        "buyer": "customer_id",
        "quantity": "quantity",
        "price": "unit_price",
        "currency": "currency",
        "sku": "sku",
        "coupon_code": "discount_code",
        "discount_amount": "discount_amount",
        "order_shipping": "shipping_amount",
        "order_sales_tax": "tax_amount",
        **_ETSY_ADDRESS,
    },
    date_orders={"ordered_at": MONTH_FIRST},
    prepare=_etsy_items,
)
ETSY_SOLD_ORDERS = Layout(
    key="etsy_sold_orders",
    label="Etsy sold orders",
    kind="orders",
    required=frozenset({"sale_date", "order_id", "order_value", "order_total"}),
    columns={
        "order_id": "order_id",
        "sale_date": "ordered_at",
        "buyer": "customer_id",
        "buyer_user_id": "customer_id",  # older files have no Buyer column
        "first_name": "first_name",
        "last_name": "last_name",
        "order_value": "amount",
        "currency": "currency",
        "coupon_code": "discount_code",
        "discount_amount": "discount_amount",
        "status": "status",
        "shipping": "shipping_amount",
        "sales_tax": "tax_amount",
        **_ETSY_ADDRESS,
    },
    date_orders={"ordered_at": MONTH_FIRST},
    prepare=_etsy_orders,
)


# --- Stripe -------------------------------------------------------------------------


def _stripe_payment(rec: dict, attrs: dict, row: RowContext) -> list[Row]:
    if row.get("captured").lower() == "false" and rec.get("status", "").lower() == "paid":
        rec["status"] = "pending"  # authorised, not captured: no money yet
    amount, refunded = _money(rec.get("amount", "")), _money(row.get("amount_refunded"))
    if amount is not None and refunded and 0 < refunded < amount:
        rec["amount"] = _fmt(amount - refunded)  # a partial refund: what was kept
    _full_name(rec, "card_name", row=row)  # the cardholder
    return [(rec, attrs)]


STRIPE_PAYMENTS = Layout(
    key="stripe_payments",
    label="Stripe payments",
    kind="orders",
    required=frozenset({"id", "amount", "currency", "status"}),
    any_of=(frozenset({"created_date_utc", "created_utc"}),),
    columns={
        "id": "order_id",
        "created_date_utc": "ordered_at",
        "created_utc": "ordered_at",
        "amount": "amount",
        "currency": "currency",
        "status": "status",
        "customer_id": "customer_id",
        "customer_email": "email",
        "description": "product_name",
        "card_address_city": "city",
        "card_address_state": "region",
        "card_address_country": "country",
        "card_address_zip": "postal_code",
    },
    prepare=_stripe_payment,
)


# --- WooCommerce --------------------------------------------------------------------


def _first_listed(text: str) -> str:
    return text.split(",")[0].strip()


def _woo_product(rec: dict, attrs: dict, row: RowContext) -> list[Row]:
    if not rec.get("sku") and row.get("id"):
        rec["sku"] = f"woo-{row.get('id')}"  # as order lines without a sku name it
    rec["category"] = _first_listed(rec.get("category", ""))
    rec["image_url"] = _first_listed(rec.get("image_url", ""))
    if not rec.get("price"):
        rec["price"] = row.get("sale_price")
    return [(rec, attrs)]


def _pairs(cell: str) -> dict[str, str]:
    """'name:Hoodie|product_id:12|quantity:2|total:40.00' → {name: Hoodie, …}."""
    out = {}
    for part in cell.split("|"):
        key, sep, value = part.partition(":")
        if sep:
            out[key.strip().lower()] = value.strip()
    return out


def _woo_order(rec: dict, attrs: dict, row: RowContext) -> list[Row]:
    """One row per order; its lines are packed into `line_item_1`, `line_item_2`, …
    Each line's `sub_total` is before the coupons, `total` after: the difference is
    the line's discount."""
    if rec.get("customer_id") == "0":  # WooCommerce's guest
        rec["customer_id"] = ""
    if not rec.get("email"):
        rec["email"] = row.get("billing_email")
    if not rec.get("status", "").strip():
        rec["status"] = "paid"
    codes = [_pairs(c).get("code", "") for c in row.get("coupon_items").split(";") if c.strip()]
    rec["discount_code"] = ", ".join(c for c in codes if c)
    numbered = sorted(
        (int(k.rsplit("_", 1)[1]), v)
        for k, v in row.raw.items()
        if re.fullmatch(r"line_item_\d+", k) and v.strip()
    )
    # the order's shipping and taxes (goods' tax and shipping's tax), on its first line
    shipping = _money(row.get("shipping_total"))
    taxes = [_money(row.get(n)) for n in ("tax_total", "shipping_tax_total")]
    rec["shipping_amount"] = _fmt(shipping) if shipping is not None else ""
    given = [t for t in taxes if t is not None]
    rec["tax_amount"] = _fmt(sum(given, Decimal(0))) if given else ""
    lines: list[Row] = []
    for _, cell in numbered:
        item = _pairs(cell)
        sub_total, total = _money(item.get("sub_total", "")), _money(item.get("total", ""))
        gross = sub_total if sub_total is not None else total
        if gross is None:
            continue
        line = dict(rec)
        line["product_name"] = item.get("name", "")
        ident = item.get("variation_id") if item.get("variation_id") not in ("", "0") else None
        line["sku"] = item.get("sku") or (
            f"woo-{ident or item['product_id']}" if (ident or item.get("product_id")) else ""
        )
        line["quantity"] = item.get("quantity", "1")
        line["amount"] = _fmt(gross)
        line["unit_price"] = ""
        line["discount_amount"] = _fmt(gross - total) if total is not None else ""
        if lines:
            line["shipping_amount"] = line["tax_amount"] = ""
        lines.append((line, attrs))
    if lines:
        return lines
    # no line items in the file: the order as one line, its subtotal less its discount
    rec["amount"] = rec.get("amount") or row.get("order_total")
    rec["discount_amount"] = row.get("discount_total")
    return [(rec, attrs)]


WOOCOMMERCE_PRODUCTS = Layout(
    key="woocommerce_products",
    label="WooCommerce products",
    kind="products",
    required=frozenset({"id", "type", "sku", "name", "regular_price"}),
    columns={
        "sku": "sku",
        "name": "name",
        "categories": "category",
        "regular_price": "price",
        "images": "image_url",
        "in_stock": "in_stock",
    },
    prepare=_woo_product,
)
WOOCOMMERCE_ORDERS = Layout(
    key="woocommerce_orders",
    label="WooCommerce orders",
    kind="orders",
    required=frozenset({"order_id", "order_date", "status", "order_total"}),
    any_of=(frozenset({"line_item_1", "order_subtotal", "customer_email", "billing_email"}),),
    columns={
        "order_id": "order_id",
        "order_date": "ordered_at",
        "order_subtotal": "amount",  # an order without line items: its subtotal
        "status": "status",
        "order_currency": "currency",
        "customer_id": "customer_id",
        "customer_user": "customer_id",
        "customer_email": "email",
        "billing_email": "email",
        "billing_first_name": "first_name",
        "billing_last_name": "last_name",
        "billing_phone": "phone",
        "billing_city": "city",
        "billing_state": "region",
        "billing_country": "country",
        "billing_postcode": "postal_code",
        "shipping_city": "city",
        "shipping_state": "region",
        "shipping_country": "country",
        "shipping_postcode": "postal_code",
    },
    prepare=_woo_order,
)


def _woo_analytics(rec: dict, attrs: dict, row: RowContext) -> list[Row]:
    # Net Sales is already net of the coupons (which are only named); the buyer's
    # name is all the file says of them
    _full_name(rec, "customer", row=row)
    return [(rec, attrs)]


WOOCOMMERCE_ANALYTICS_ORDERS = Layout(
    key="woocommerce_analytics_orders",
    label="WooCommerce Analytics orders",
    kind="orders",
    required=frozenset({"date", "order", "status", "customer", "net_sales"}),
    any_of=(frozenset({"items_sold", "product_s", "customer_type"}),),
    columns={
        "order": "order_id",
        "date": "ordered_at",
        "status": "status",
        "customer": "customer_id",  # the buyer's name: the only identity this file has
        "product_s": "product_name",
        "items_sold": "quantity",
        "net_sales": "amount",
        "coupon_s": "discount_code",
    },
    prepare=_woo_analytics,
)


# --- Square -------------------------------------------------------------------------

# Square writes the seller's time zone by its display name, one per row.
SQUARE_ZONES = {
    "eastern time (us & canada)": "America/New_York",
    "central time (us & canada)": "America/Chicago",
    "mountain time (us & canada)": "America/Denver",
    "arizona": "America/Phoenix",
    "pacific time (us & canada)": "America/Los_Angeles",
    "alaska": "America/Anchorage",
    "hawaii": "Pacific/Honolulu",
    "atlantic time (canada)": "America/Halifax",
    "newfoundland": "America/St_Johns",
    "london": "Europe/London",
    "edinburgh": "Europe/London",
    "dublin": "Europe/Dublin",
    "paris": "Europe/Paris",
    "madrid": "Europe/Madrid",
    "sydney": "Australia/Sydney",
    "melbourne": "Australia/Melbourne",
    "brisbane": "Australia/Brisbane",
    "adelaide": "Australia/Adelaide",
    "perth": "Australia/Perth",
    "tokyo": "Asia/Tokyo",
    "utc": "UTC",
}
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME = re.compile(r"^\d{1,2}:\d{2}(:\d{2})?$")


def square_moment(date: str, time: str, zone: str) -> str:
    """'2026-10-05', '10:15:00', 'Eastern Time (US & Canada)' → ISO 8601 with the
    offset that zone had then; the date alone when the parts cannot be combined."""
    if not (_ISO_DATE.match(date) and _TIME.match(time)):
        return date
    name = SQUARE_ZONES.get(zone.strip().lower(), zone.strip())
    try:
        tz = zoneinfo.ZoneInfo(name) if name else None
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        tz = None
    moment = dt.datetime.fromisoformat(f"{date}T{time if time.count(':') == 2 else time + ':00'}")
    if tz is None:
        return moment.isoformat()  # read in the organisation's time zone
    return moment.replace(tzinfo=tz).isoformat()


# A Square amount's own symbol names its currency when it is not a dollar (which
# could be US, Canadian or Australian).
SQUARE_SYMBOLS = {"£": "GBP", "€": "EUR", "¥": "JPY"}


def _square(rec: dict, attrs: dict, row: RowContext) -> list[Row]:
    symbol = next((c for c in rec.get("amount", "") if c in SQUARE_SYMBOLS), "")
    if symbol and not rec.get("currency"):
        rec["currency"] = SQUARE_SYMBOLS[symbol]
    rec["ordered_at"] = square_moment(
        rec.get("ordered_at", ""), row.get("time"), row.get("time_zone")
    )
    # Discounts are written as negative amounts ("-$1.00"): the discount is its size.
    discount = _money(rec.get("discount_amount", ""))
    rec["discount_amount"] = _fmt(abs(discount)) if discount else ""
    _full_name(rec, "customer_name", row=row)
    return [(rec, attrs)]


_SQUARE_COMMON = {
    "transaction_id": "order_id",
    "date": "ordered_at",
    "customer_id": "customer_id",
    "location": "location",
    "channel": "channel",
    "source": "channel",
    "gross_sales": "amount",
    "discounts": "discount_amount",
    "tax": "tax_amount",  # item details: each item's tax (added up per transaction)
}
SQUARE_ITEMS = Layout(
    key="square_items",
    label="Square item details",
    kind="orders",
    required=frozenset(
        {"date", "time", "time_zone", "item", "qty", "gross_sales", "transaction_id"}
    ),
    columns={
        **_SQUARE_COMMON,
        "item": "product_name",
        "category": "category",
        "qty": "quantity",
        "sku": "sku",
    },
    prepare=_square,
)
SQUARE_TRANSACTIONS = Layout(
    key="square_transactions",
    label="Square transactions",
    kind="orders",
    required=frozenset(
        {"date", "time", "time_zone", "gross_sales", "total_collected", "transaction_id"}
    ),
    columns={
        **_SQUARE_COMMON,
        "description": "product_name",
        "transaction_status": "status",
    },
    prepare=_square,
)

LAYOUTS: tuple[Layout, ...] = (
    SHOPIFY_ORDERS,
    SHOPIFY_CUSTOMERS,
    SHOPIFY_PRODUCTS,
    ETSY_ORDER_ITEMS,
    ETSY_SOLD_ORDERS,
    STRIPE_PAYMENTS,
    WOOCOMMERCE_PRODUCTS,
    WOOCOMMERCE_ORDERS,
    WOOCOMMERCE_ANALYTICS_ORDERS,
    SQUARE_ITEMS,
    SQUARE_TRANSACTIONS,
)
BY_KEY = {layout.key: layout for layout in LAYOUTS}


def detect_layout(kind: str, header: list[str]) -> Layout | None:
    names = {normalise(h) for h in header}
    return next((layout for layout in LAYOUTS if layout.matches(kind, names)), None)


def layout_label(key: str) -> str:
    """The name a person reads for a recognised layout ('' for a generic file)."""
    layout = BY_KEY.get(key or "")
    return layout.label if layout else ""


# Header words that say in which time zone a column's times are written.
_ZONE_IN_HEADER = re.compile(r"[(\[]\s*(utc|gmt)\s*[)\]]|\b(utc|gmt)\s*$", re.IGNORECASE)


def header_zone(header: str) -> dt.tzinfo | None:
    """`Created date (UTC)` → UTC: the column's times are in UTC, whatever the
    organisation's time zone."""
    return dt.UTC if _ZONE_IN_HEADER.search(header.strip()) else None
