"""Pages of API lists: page numbers (the default), or a cursor for reading a list
that changes while it is read.

`?page=N` pages keep the list's ordering and its `count`; rows inserted or
deleted during a read shift them, so a reader may see a row twice or miss one.
`?cursor=` (empty to start, then the `next` link) reads in id order after the
last row seen: a row inserted during the read comes once, at the end, and a
deleted one never hides another. Cursor pages have no `count` and no
`previous`; they cannot be combined with `ordering` or `page`.
"""

from __future__ import annotations

import base64
import binascii

from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

from core.exceptions import ApplicationError

CURSOR = "cursor"


def cursor_encode(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def cursor_decode(value: str) -> int:
    """The id after which a cursor page starts (0: the first page)."""
    value = (value or "").strip()
    if not value:
        return 0
    try:
        text = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        kind, _, number = text.partition(":")
        last_id = int(number) if kind == "id" and number.isascii() and number.isdigit() else -1
    except (binascii.Error, UnicodeDecodeError, ValueError):
        last_id = -1
    if not 0 <= last_id < 2**63:
        raise ApplicationError(
            "This cursor is not one of ours: start again with an empty cursor and follow `next`.",
            {"fields": {CURSOR: "Not a cursor."}},
        )
    return last_id


class Pagination(PageNumberPagination):
    """`{"count", "next", "previous", "results"}`; `?page_size=` up to 1000; or
    `?cursor=` pages `{"next", "previous": null, "results"}` in id order."""

    page_size_query_param = "page_size"
    max_page_size = 1000
    # a page beyond the last (or not a number) is a 404 with the error shape, so a
    # script paging on learns it went too far; the site's lists show the last page
    invalid_page_message = "There is no page '{page_number}' of this list: pages run from 1 to the last page ({message})."

    cursor_mode = False

    def paginate_queryset(self, queryset, request, view=None):
        if CURSOR not in request.query_params:
            return super().paginate_queryset(queryset, request, view)
        for clash in ("ordering", self.page_query_param):
            if clash in request.query_params:
                raise ApplicationError(
                    f"'{clash}' cannot be combined with 'cursor': cursor pages are read in id "
                    "order.",
                    {"fields": {clash: "Not with a cursor."}},
                )
        if not hasattr(queryset, "order_by"):
            raise ApplicationError(
                "This list has no cursor pages; use page numbers.",
                {"fields": {CURSOR: "Not offered here."}},
            )
        self.cursor_mode = True
        self.request = request
        after = cursor_decode(request.query_params.get(CURSOR, ""))
        size = self.get_page_size(request) or self.page_size
        rows = list(queryset.order_by("pk").filter(pk__gt=after)[: size + 1])
        self.has_next = len(rows) > size
        rows = rows[:size]
        self.last_id = rows[-1].pk if rows else after
        return rows

    def get_next_link(self):
        if not self.cursor_mode:
            return super().get_next_link()
        if not self.has_next:
            return None
        url = remove_query_param(self.request.build_absolute_uri(), self.page_query_param)
        return replace_query_param(url, CURSOR, cursor_encode(self.last_id))

    def get_paginated_response(self, data):
        if not self.cursor_mode:
            return super().get_paginated_response(data)
        return Response({"next": self.get_next_link(), "previous": None, "results": data})

    def get_paginated_response_schema(self, schema):
        response = super().get_paginated_response_schema(schema)
        # cursor pages have no count
        response["required"] = [r for r in response.get("required", []) if r != "count"]
        return response

    def get_schema_operation_parameters(self, view):
        return [
            *super().get_schema_operation_parameters(view),
            {
                "name": CURSOR,
                "required": False,
                "in": "query",
                "description": "Read the list in id order after a cursor: empty for the first "
                "page, then follow `next`. Rows inserted or deleted during the read are neither "
                "repeated nor skipped. Not with `page` or `ordering`; no `count`.",
                "schema": {"type": "string"},
            },
        ]


class RunPagination(Pagination):
    """Pages of one run's rows: the page also names the run (`run`), added by the view."""

    def get_paginated_response_schema(self, schema):
        response = super().get_paginated_response_schema(schema)
        response["properties"]["run"] = {
            "type": "object",
            "nullable": True,
            "description": "The run these rows come from (null before any run); when it "
            "changes between pages, a new run was published during the read.",
            "properties": {
                "id": {"type": "integer"},
                "as_of": {"type": "string", "format": "date"},
                "created_at": {"type": "string", "format": "date-time"},
            },
        }
        return response
