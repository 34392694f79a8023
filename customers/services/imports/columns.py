"""Canonical columns per kind, header auto-mapping and shop-system formats.

A mapping is `{source column: target}` where the target is a canonical field
name, `""` (ignore the column) or any other name (keep the column as a custom
attribute / property under that name). Unmapped columns are kept under their
own header name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.exceptions import ApplicationError

from ... import fields as customer_fields
from . import platforms

KINDS = ("customers", "products", "orders", "events", "feedback")

# field -> type, in the order the import form lists them
FIELDS: dict[str, dict[str, str]] = {
    "customers": {
        **{f.file_column: f.kind for f in customer_fields.select(imported=True)},
        # the shop system's own figures (Shopify's Total Orders, Total Spent): the
        # customer's until their orders are imported
        "orders_count": "int",
        "total_spent": "money",
    },
    "products": {
        "sku": "id",
        "name": "str",
        "category": "str",
        "price": "money",
        "url": "str",
        "image_url": "str",
        "in_stock": "bool",
        "merchandise": "bool",
        "hidden": "bool",
    },
    "orders": {
        "order_id": "id",
        # the integration's key of the line within its order: lines are upserted by it
        "line_id": "id",
        "customer_id": "id",
        "email": "email",
        "ordered_at": "datetime",
        "sku": "str",
        "product_name": "str",
        "category": "str",
        "quantity": "int",
        "unit_price": "money",
        "amount": "money",
        "currency": "str",
        "channel": "str",
        "location": "str",
        # paid (default), pending, cancelled or refunded: only paid orders are purchases
        "status": "str",
        "discount_code": "str",
        "discount_amount": "money",
        # the order's shipping and taxes (not in any line's amount); a file giving
        # them on several rows of an order has them added up
        "shipping_amount": "money",
        "tax_amount": "money",
        # the customer's name, phone and address on the order: fill the customer's
        # profile (the latest order wins; a blank keeps the stored value)
        "first_name": "str",
        "last_name": "str",
        "phone": "str",
        # the buyer's marketing consent as the order states it
        "accepts_email": "bool",
        "accepts_sms": "bool",
        **{f.file_column: f.kind for f in customer_fields.select(on_orders=True)},
    },
    "events": {
        "event_id": "id",
        "customer_id": "id",
        "email": "email",
        "occurred_at": "datetime",
        "type": "str",
    },
    "feedback": {
        "feedback_id": "id",
        "customer_id": "id",
        "email": "email",
        "created_at": "datetime",
        "source": "str",
        "rating": "float",
        "text": "text",
    },
}
DATE_FIELDS = {
    kind: [f for f, t in fields.items() if t in ("date", "datetime")]
    for kind, fields in FIELDS.items()
}
FIELD_HELP = {
    "customer_id": "Your id for the customer (required)",
    "email": "Email address",
    "ordered_at": "When the order was placed (required)",
    "order_id": "Order or invoice number; rows with the same number are one order",
    "line_id": "Your key of the line within its order: a line sent again replaces only that line",
    "quantity": "Units (negative for returns); default 1",
    "unit_price": "Price of one unit",
    "amount": "Line total (quantity × unit price)",
    "sku": "Product code",
    "shipping_amount": "The order's shipping charge (give it once per order)",
    "tax_amount": "The order's taxes (give them once per order)",
    "merchandise": "False for postage, fees and adjustments; detected when blank",
    "hidden": "True leaves the product out of favourites and demand",
    "occurred_at": "When it happened (required)",
    "type": "What happened, e.g. page_view (required)",
    "created_at": "When the feedback was given (required)",
    "orders_count": "The shop's count of the customer's orders: shown until their orders are imported",
    "total_spent": "The shop's total of the customer's spend: shown until their orders are imported",
}

# Normalised header names that mean a field, best first. Headers are normalised by
# lower-casing and turning every run of other characters into "_".
SYNONYMS: dict[str, dict[str, list[str]]] = {
    "customers": {
        **{f.file_column: list(f.aliases) for f in customer_fields.select(imported=True)},
        "orders_count": ["orders_count", "total_orders", "number_of_orders", "order_count"],
        "total_spent": ["total_spent", "amount_spent", "total_spend", "lifetime_spend"],
    },
    "products": {
        "sku": [
            "sku",
            "variant_sku",
            "stockcode",
            "stock_code",
            "product_id",
            "product_code",
            "item_id",
            "article",
            "article_number",
            "id",
            "handle",
        ],
        "name": ["name", "title", "product_name", "product", "description", "item_name"],
        "category": [
            "category",
            "product_category",
            "product_type",
            "type",
            "department",
            "collection",
        ],
        "price": ["price", "variant_price", "unit_price", "unitprice", "list_price"],
        "url": ["url", "product_url", "link", "web_url"],
        "image_url": ["image_url", "image", "image_src", "picture", "photo"],
        "in_stock": ["in_stock", "instock", "available", "availability", "stock_status"],
        "merchandise": ["merchandise", "is_merchandise"],
        "hidden": ["hidden", "is_hidden"],
    },
    "orders": {
        "line_id": ["line_id", "order_line_id"],
        "order_id": [
            "order_id",
            "invoiceno",
            "invoice_no",
            "invoice",
            "invoice_id",
            "invoice_number",
            "order_number",
            "order_no",
            "orderid",
            "transaction_id",
            "receipt_id",
            "order",
        ],
        "customer_id": [
            "customer_id",
            "customerid",
            "customer_number",
            "customer_no",
            "cust_id",
            "client_id",
            "user_id",
            "member_id",
            "customer",
        ],
        "email": ["email", "customer_email", "e_mail", "email_address"],
        "ordered_at": [
            "ordered_at",
            "invoicedate",
            "invoice_date",
            "order_date",
            "orderdate",
            "created_at",
            "purchase_date",
            "transaction_date",
            "date",
            "datetime",
            "timestamp",
            "time",
        ],
        "sku": [
            "sku",
            "lineitem_sku",
            "stockcode",
            "stock_code",
            "product_id",
            "product_code",
            "item_id",
            "article",
        ],
        "product_name": [
            "product_name",
            "lineitem_name",
            "description",
            "product",
            "item",
            "item_name",
            "product_title",
            "title",
        ],
        "category": ["category", "product_category", "product_type", "department"],
        "quantity": ["quantity", "lineitem_quantity", "qty", "units", "quantity_ordered"],
        "unit_price": [
            "unit_price",
            "unitprice",
            "lineitem_price",
            "price",
            "item_price",
            "price_each",
        ],
        "amount": [
            "amount",
            "line_total",
            "line_amount",
            "total",
            "revenue",
            "sales",
            "total_price",
            "order_total",
            "value",
        ],
        "currency": ["currency", "currency_code"],
        "channel": ["channel", "sales_channel", "source_name", "source"],
        # plain "status" is often a delivery status: only payment words are read alone
        "status": ["financial_status", "payment_status", "order_status"],
        "discount_code": ["discount_code", "coupon_code", "coupon", "promo_code", "voucher_code"],
        "discount_amount": ["discount_amount", "discount", "discounts", "discount_total"],
        # not plain "shipping" (often a method or an address)
        "shipping_amount": ["shipping_amount", "shipping_cost", "shipping_total", "shipping_price"],
        "tax_amount": ["tax_amount", "taxes", "tax_total", "sales_tax", "total_tax"],
        "phone": ["phone", "phone_number", "billing_phone", "mobile", "telephone"],
        "first_name": ["first_name", "billing_first_name", "firstname"],
        "last_name": ["last_name", "billing_last_name", "lastname", "surname"],
        "accepts_email": ["accepts_email", "accepts_email_marketing", "accepts_marketing"],
        "accepts_sms": ["accepts_sms", "accepts_sms_marketing"],
        "location": ["location", "store", "shop", "store_id", "branch"],
        # billing before shipping: the customer's own address rather than a gift's
        **{f.file_column: list(f.order_aliases) for f in customer_fields.select(on_orders=True)},
    },
    "events": {
        "event_id": ["event_id", "eventid", "id"],
        "customer_id": ["customer_id", "customerid", "user_id", "client_id", "customer"],
        "email": ["email", "customer_email"],
        "occurred_at": [
            "occurred_at",
            "timestamp",
            "event_time",
            "event_date",
            "time",
            "date",
            "created_at",
            "datetime",
        ],
        "type": ["type", "event_type", "event", "event_name", "action", "name"],
    },
    "feedback": {
        "feedback_id": ["feedback_id", "review_id", "response_id", "ticket_id", "id"],
        "customer_id": ["customer_id", "customerid", "user_id", "client_id", "customer"],
        "email": ["email", "customer_email"],
        "created_at": [
            "created_at",
            "date",
            "submitted_at",
            "timestamp",
            "review_date",
            "time",
            "datetime",
        ],
        "source": ["source", "channel", "feedback_source", "origin"],
        "rating": ["rating", "stars", "score", "rate", "nps"],
        "text": [
            "text",
            "comment",
            "comments",
            "review",
            "verified_reviews",
            "review_text",
            "feedback",
            "body",
            "message",
            "answer",
        ],
    },
}

# Shop systems' export layouts (Shopify, Etsy, Stripe, WooCommerce, Square) are
# recognised by their columns and mapped whole: see platforms.py.


_ZONE_SUFFIX = re.compile(r"_(utc|gmt)$")
# Shopify (and spreadsheets) write ids and phone numbers as '8687677178101 so that
# no spreadsheet turns them into numbers; the apostrophe is not part of the value.
APOSTROPHE_FIELDS = {"phone", "postal_code"}


def normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def detect_format(kind: str, header: list[str]) -> str:
    layout = platforms.detect_layout(kind, header)
    return layout.key if layout else "generic"


def auto_map(kind: str, header: list[str]) -> tuple[dict[str, str], str]:
    """Suggested mapping for a header, and the recognised format's name."""
    if kind not in FIELDS:
        raise ApplicationError(f"Unknown kind '{kind}'. Use one of: {', '.join(KINDS)}.")
    fmt = detect_format(kind, header)
    mapping: dict[str, str] = {h: h for h in header}  # keep everything by default
    taken: set[str] = set()
    normalised = [(h, normalise(h)) for h in header]
    if fmt != "generic":
        # the layout's own order decides between two columns for one field
        # (Shopify's Province Code before its Province name)
        by_name: dict[str, str] = {}
        for h, n in normalised:
            by_name.setdefault(n, h)
        for n, target in platforms.BY_KEY[fmt].columns.items():
            column = by_name.get(n)
            if column is not None and target not in taken and mapping[column] == column:
                mapping[column] = target
                taken.add(target)
        return mapping, fmt
    # "Created date (UTC)" is a "created date" whose zone the header gives
    normalised = [(h, _ZONE_SUFFIX.sub("", n)) for h, n in normalised]
    for fld, names in SYNONYMS[kind].items():
        for name in names:
            match = next((h for h, n in normalised if n == name and mapping[h] == h), None)
            if match is not None and fld not in taken:
                mapping[match] = fld
                taken.add(fld)
                break
    return mapping, fmt


def apply_overrides(
    kind: str, header: list[str], mapping: dict[str, str], overrides: dict[str, str] | None
) -> dict[str, str]:
    """`--map SRC=DST` and the import form's choices, on top of the suggestion."""
    result = dict(mapping)
    by_norm = {normalise(h): h for h in header}
    for src, dst in (overrides or {}).items():
        column = src if src in result else by_norm.get(normalise(src))
        if column is None:
            raise ApplicationError(
                f"The mapping names a column that is not in the file: '{src}'. "
                f"The file's columns are: {', '.join(header)}.",
                {"fields": {"map": f"No column '{src}'."}},
            )
        dst = (dst or "").strip()
        if dst == "-":
            dst = ""
        if dst in FIELDS[kind]:
            for other, target in result.items():
                if target == dst and other != column:
                    result[other] = other  # the field moves; keep the old column as an attribute
        result[column] = dst
    return result


@dataclass
class Plan:
    """How each column of a file is read for a kind."""

    kind: str
    header: list[str]
    mapping: dict[str, str]
    fmt: str = "generic"

    def __post_init__(self):
        self.layout = platforms.BY_KEY.get(self.fmt)
        self.label = self.layout.label if self.layout else ""
        self._state: dict = {}  # what the layout remembers from row to row
        self.fields: list[tuple[int, str]] = []
        self.attributes: list[tuple[int, str]] = []
        for i, h in enumerate(self.header):
            target = self.mapping.get(h, h)
            if not target:
                continue
            if target in FIELDS[self.kind]:
                self.fields.append((i, target))
            else:
                self.attributes.append((i, target))
        self.field_names = {f for _, f in self.fields}
        self.column_of = {f: self.header[i] for i, f in self.fields}
        kind_fields = FIELDS[self.kind]
        self._unquote = [
            i for i, f in self.fields if kind_fields[f] == "id" or f in APOSTROPHE_FIELDS
        ]
        # A date column whose header names its zone ("Created date (UTC)").
        self.zones = {
            f: zone
            for i, f in self.fields
            if kind_fields[f] in ("date", "datetime")
            and (zone := platforms.header_zone(self.header[i])) is not None
        }
        # A layout's dates are month-first (Etsy) whatever the values show.
        self.date_orders = dict(self.layout.date_orders) if self.layout else {}
        self._normalised = [normalise(h) for h in self.header]
        # Without a customer id column, the email identifies the customer.
        self.customer_key = (
            "customer_id"
            if "customer_id" in self.field_names
            else ("email" if "email" in self.field_names else None)
        )

    def check(self) -> None:
        kind, have = self.kind, self.field_names
        missing = []
        if kind == "customers" and self.customer_key is None:
            missing.append("customer_id (or email)")
        if kind == "products" and "sku" not in have:
            missing.append("sku")
        if kind == "orders":
            if "ordered_at" not in have:
                missing.append("ordered_at")
            if not have & {"unit_price", "amount"}:
                missing.append("unit_price or amount")
        if kind == "events":
            if self.customer_key is None:
                missing.append("customer_id")
            missing += [f for f in ("occurred_at", "type") if f not in have]
        if kind == "feedback":
            if "created_at" not in have:
                missing.append("created_at")
            if not have & {"text", "rating"}:
                missing.append("text or rating")
        if missing:
            raise ApplicationError(
                f"This file cannot be read as {kind}: no column for {', '.join(missing)}. "
                f"The file's columns are: {', '.join(self.header)}. Choose the column "
                + ("that holds each of them." if len(missing) > 1 else "that holds it."),
                {"fields": {"map": f"No column for {', '.join(missing)}."}},
            )

    def extract(self, cells: list[str]) -> tuple[dict[str, str], dict[str, str]]:
        n = len(cells)
        rec = {f: (cells[i].strip() if i < n else "") for i, f in self.fields}
        for i in self._unquote:
            if i < n:
                fld = self.header_field(i)
                value = rec[fld]
                if len(value) > 1 and value[0] == "'":
                    rec[fld] = value[1:].strip()
        attrs = {}
        for i, name in self.attributes:
            if i < n:
                v = cells[i].strip()
                if v:
                    attrs[name] = v
        return rec, attrs

    def header_field(self, i: int) -> str:
        return self.mapping.get(self.header[i], self.header[i])

    def rows(self, cells: list[str]) -> list[tuple[dict[str, str], dict[str, str]]]:
        """The records one line of the file holds: usually one; none for a line a
        layout knows to carry no record (a Shopify product's extra image); several
        for a WooCommerce order's lines."""
        rec, attrs = self.extract(cells)
        if self.layout is None or self.layout.prepare is None:
            return [(rec, attrs)]
        raw = {
            name: (cells[i] if i < len(cells) else "") for i, name in enumerate(self._normalised)
        }
        for i in self._unquote:
            if i < len(cells):
                raw[self._normalised[i]] = rec[self.header_field(i)]
        return self.layout.prepare(rec, attrs, platforms.RowContext(raw=raw, state=self._state))

    def column(self, fld: str) -> str:
        return self.column_of.get(fld, fld)


def build_plan(kind: str, header: list[str], overrides: dict[str, str] | None = None) -> Plan:
    suggested, fmt = auto_map(kind, header)
    mapping = apply_overrides(kind, header, suggested, overrides)
    return Plan(kind=kind, header=header, mapping=mapping, fmt=fmt)
