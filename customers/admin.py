"""Back office: customer data of an organisation opens only through a support grant
its owner approved (or an emergency grant), read-only, and every list page and
record shown is written to that organisation's audit log (`SupportGatedAdmin`,
backoffice/support_admin.py). Products (the shop's catalogue, nobody's personal
data) stay browsable across organisations."""

from django.contrib import admin

from backoffice.support_admin import SupportGatedAdmin, SupportGatedInline

from .models import ConsentChange, Customer, Event, Feedback, Import, Order, OrderLine, Product


class TenantAdmin(admin.ModelAdmin):
    list_select_related = ["organization"]
    show_full_result_count = False  # no COUNT(*) over millions of rows

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]


@admin.register(Customer)
class CustomerAdmin(SupportGatedAdmin):
    list_display = [
        "external_id",
        "organization",
        "email",
        "country",
        "orders_count",
        "total_spent",
        "erased_at",
    ]
    list_filter = ["organization"]
    search_fields = ["external_id", "email"]


@admin.register(Product)
class ProductAdmin(TenantAdmin):
    list_display = ["sku", "organization", "name", "category", "price"]
    list_filter = ["organization"]
    search_fields = ["sku", "name"]


class OrderLineInline(SupportGatedInline):
    model = OrderLine
    fields = ["position", "sku", "product_name", "quantity", "unit_price", "amount"]
    readonly_fields = fields


@admin.register(Order)
class OrderAdmin(SupportGatedAdmin):
    list_display = ["external_id", "organization", "ordered_at", "total", "is_return"]
    list_filter = ["organization", "is_return"]
    search_fields = ["external_id"]
    raw_id_fields = ["customer"]
    inlines = [OrderLineInline]


@admin.register(Event)
class EventAdmin(SupportGatedAdmin):
    list_display = ["type", "organization", "occurred_at", "external_id"]
    list_filter = ["organization", "type"]


@admin.register(ConsentChange)
class ConsentChangeAdmin(SupportGatedAdmin):
    list_display = ["customer_id", "organization", "channel", "granted", "changed_at", "source"]
    list_filter = ["organization", "channel"]


@admin.register(Feedback)
class FeedbackAdmin(SupportGatedAdmin):
    list_display = ["external_id", "organization", "created_at", "source", "rating"]
    list_filter = ["organization", "source"]


@admin.register(Import)
class ImportAdmin(SupportGatedAdmin):
    list_display = [
        "id",
        "organization",
        "kind",
        "status",
        "original_filename",
        "rows",
        "rejected",
        "created_at",
    ]
    list_filter = ["organization", "kind", "status"]
