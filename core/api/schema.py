"""OpenAPI generation: every operation documents the error answers it can give.

Each view lists only its success answers; the 4xx answers every endpoint can give
(bad input, no key, no right, no such object or page, a conflict, too large, the
wrong content type, too many requests) are added here once, all with the one
error shape `{"error": {"code", "message", "fields"}}` (`core.api.exceptions`).
A view that documents one of these codes itself keeps its description; it gets
the error body if it gave none.

The docs people read (/api/docs/) are set here too, in one place: each operation's
tag (its resource: customers, orders, privacy, ...) comes from its path, each gets
a summary (the view's own, else one made from its action and model), every error
answer carries an example body, every answer documents `API-Version`, and
`postprocess_docs` writes the document's introduction (authentication, pages, rate
limits, errors, versions, the behaviours that surprise) and one description per tag.
"""

from __future__ import annotations

from drf_spectacular import openapi
from drf_spectacular.plumbing import is_list_serializer
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from core.api.version import API_VERSION


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine-readable reason, e.g. `not_found`.")
    message = serializers.CharField(help_text="A sentence for people.")
    fields = serializers.DictField(
        child=serializers.CharField(),
        help_text="Field name -> what is wrong with it (empty when no single field is at fault).",
    )


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()

    class Meta:
        ref_name = "Error"


ERROR_RESPONSES = {
    "400": "The request is not valid; `error.fields` names each field at fault.",
    "401": "No valid API key or session.",
    "403": "This key or member may not do this (a read key writing, or a role without the right).",
    "404": "No such object in this organisation, or no such page of a list.",
    "405": "This method is not allowed here.",
    "409": "The object's current state does not allow this (for example cancelling a privacy "
    "clean-up), or "
    "the Idempotency-Key was used for another request.",
    "413": "The body or upload is too large.",
    "415": "The body's content type is not accepted here.",
    "429": "Too many requests for this key; wait `Retry-After` seconds and retry.",
}


# Every answer under /api/v1/ carries the caller's rate budget (accounts/api/throttling.py).
RATE_LIMIT_HEADERS = {
    "X-RateLimit-Limit": "Requests allowed per window (a minute) for this key or member.",
    "X-RateLimit-Remaining": "Requests left in the current window.",
    "X-RateLimit-Reset": "Seconds until the oldest request of the window leaves it.",
}
RETRY_AFTER = {"Retry-After": "Seconds to wait before trying again."}
VERSION_HEADER = {
    "API-Version": {
        "schema": {"type": "string", "example": API_VERSION},
        "description": "The version of the API this answer follows (a date; see the "
        "changelog). Every answer under /api/v1/ carries it, errors included.",
    }
}

# One example body per error answer: the one error shape, with the codes the API uses.
ERROR_EXAMPLES = {
    "400": (
        "invalid",
        "Some fields are not valid: email",
        {"email": "Enter a valid email address."},
    ),
    "401": ("not_authenticated", "Authentication credentials were not provided.", {}),
    "403": ("permission_denied", "You do not have permission to perform this action.", {}),
    "404": ("not_found", "Not found.", {}),
    "405": ("method_not_allowed", 'Method "PUT" not allowed.', {}),
    "409": (
        "idempotency_key_reused",
        "This Idempotency-Key was used for a different request (another method, address or "
        "body). Use a new key for a new request.",
        {
            "Idempotency-Key": "This Idempotency-Key was used for a different request (another "
            "method, address or body). Use a new key for a new request."
        },
    ),
    "413": (
        "too_large",
        "The file is larger than the limit of 50 MB. Compress it as .csv.gz or split it.",
        {"file": "Too large."},
    ),
    "415": ("unsupported_media_type", 'Unsupported media type "text/plain" in request.', {}),
    "429": (
        "throttled",
        "Your plan's limit of 1,200 API requests a minute is reached: this API key made "
        "1,200 requests in the last minute. Ask Segmenta support to raise it. "
        "Try again in 12 seconds.",
        {},
    ),
}


def _headers(names: dict[str, str]) -> dict:
    return {
        name: {"schema": {"type": "integer"}, "description": description}
        for name, description in names.items()
    }


# Resources, in the order /api/docs/ shows them. An operation's tag is the first part
# of its path under /api/v1/, except where TAG_OF_PATH says otherwise.
TAGS = {
    "organization": "The organisation an API key (or session) acts for.",
    "customers": "Customers: read, change, and upsert in bulk by your own ids. An order, event or "
    "bulk record naming a customer id Segmenta does not know **creates that customer**; record "
    "keys that are not columns (and a `properties` / `attributes` object) are kept in the "
    "customer's `attributes`, not refused.",
    "privacy": "What a person may ask for: everything held on them (export), their consent "
    "history, and erasure (personal data removed, orders kept without the identity, the id "
    "refused by later imports). Erasures are announced by the `customer.erased` webhook.",
    "orders": "Orders with their lines. Bulk records are lines, one per product: lines sharing an "
    "`order_id` make one order; give each line a `line_id` so an order may be split across calls "
    "and re-sent without losing or doubling a line; **without `line_id`s, the last call that "
    "names an order replaces all its lines**. **A line without an `order_id`** is an order of "
    "its own, identified by its content. An unknown `sku` creates the product, an unknown "
    "customer id the customer; a blank customer id is a guest order.",
    "products": "The catalogue, keyed by `sku`; order lines naming an unknown sku create products "
    "too.",
    "events": "Activity of customers (page views, emails opened, ...), keyed by your `event_id` "
    "when given; an event sent again with other content is updated in place.",
    "imports": "CSV files (multipart upload) imported in the background; each import reports its "
    "counts and rejected rows.",
    "jobs": "Background work: imports, segment and prediction runs, privacy clean-ups. A write "
    "that starts work names its jobs in the answer (`jobs`); a failed job says why, in words, "
    "and at which step.",
    "segments": "Segments of the live run (clusters, RFM groups, sub-segments) and rule segments, "
    "with their members. Member pages name the run they come from.",
    "personas": "Descriptions of the live segments; a person's edits survive later runs.",
    "predictions": "Customer lifetime value, next order and churn risk, and product demand, from "
    "the live prediction run; runs and their back-tests.",
    "recommendations": "Products recommended to a customer, products bought together, and the "
    "model that serves them.",
    "stores": "The business's shops: a name and where each is (coordinates and/or postcode "
    "beginnings); location audiences pick customers near them.",
    "audiences": "Saved lists of customers that campaigns send to: from segments, rules, "
    "predicted goals, a past campaign's responders, look-alikes of a group, or a place. Preview "
    "one without saving; each shows its size, reach by email and SMS, the model's hold-out "
    "accuracy and a fairness check. Rebuilt after every pipeline run.",
    "automations": "Messages sent by a trigger (enters a segment or audience, churn risk turns "
    "high, days after a first order, next order overdue, birthday, back in stock, loyalty tier "
    "changed): each customer gets one once per occurrence, under the same consent, cap and "
    "quiet-hour rules as campaigns.",
    "campaigns": "Personalised email and SMS to segments and audiences: only to customers who "
    "consented to the channel, never the same campaign twice to one person, with variants, "
    "hold-out groups and results measured in orders and revenue.",
    "offers": "Discounts, free delivery or a free product for segments or an audience: one "
    "unguessable code per customer (or a shared code), a hold-out group that gets none, "
    "redemptions read from order lines' `discount_code`, results against the hold-out, a "
    "fairness check before sending, and suggestions per segment backed by earlier offers.",
    "loyalty": "The loyalty programme: tiers from orders or spend over a rolling period, points "
    "per unit of currency (returns take them back) exchanged for offer codes, and each "
    "customer's tier and progress.",
    "feedback": "Reviews, support messages and free-text answers, keyed by your `feedback_id` "
    "when given; each item carries its sentiment (−1…1) and theme once the research step has "
    "run. Ratings are optional; a blank or non-numeric rating is kept blank.",
    "research": "What customers say, read at scale: themes with readable labels, example quotes, "
    "their trend and which segments mention them most; and what changed this month.",
    "surveys": "Short surveys (rating, NPS 0–10, multiple choice, free text) with a public link "
    "and personal links; results with NPS per segment; responses gathered elsewhere can be "
    "recorded.",
    "webhooks": "Outbound notifications: register a URL and the event types; deliveries are "
    "signed with the endpoint's secret, retried with back-off, and logged.",
}
TAG_OF_PATH = {
    ("customers", "export"): "privacy",
    ("customers", "erase"): "privacy",
    ("customers", "consent"): "privacy",
    ("customers", "recommendations"): "recommendations",
    ("customers", "loyalty"): "loyalty",
    ("products", "related"): "recommendations",
}

# Summaries of the standard actions; `{one}` and `{many}` are the model's names.
ACTION_SUMMARIES = {
    "list": "List {many}",
    "retrieve": "One {one}",
    "create": "Create {a} {one}",
    "update": "Replace {a} {one}",
    "partial_update": "Change {a} {one}",
    "destroy": "Delete {a} {one}",
    "bulk": "Upsert {many} in bulk (up to 1,000)",
}


def _path_parts(path: str) -> list[str]:
    """The path's parts under /api/v1/ without the `{id}` parameters."""
    rest = path.split("/api/v1/", 1)[-1]
    return [part for part in rest.split("/") if part and not part.startswith("{")]


IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    str,
    location=OpenApiParameter.HEADER,
    required=False,
    description="Any unique string (up to 255 characters) of yours. A retry with the same key "
    "gets the first answer (status and body) without applying the write again; the same key "
    "with another request answers 409 `idempotency_key_reused`. Keys belong to the API key "
    "that sent them and are kept for 24 hours.",
)


class AutoSchema(openapi.AutoSchema):
    def get_tags(self) -> list[str]:
        parts = _path_parts(self.path)
        if not parts:
            return super().get_tags()
        for part in parts[1:]:
            if (parts[0], part) in TAG_OF_PATH:
                return [TAG_OF_PATH[(parts[0], part)]]
        return [parts[0]]

    def get_summary(self) -> str | None:
        summary = super().get_summary()
        if summary:
            return summary
        action = getattr(self.view, "action", None)
        if action in ACTION_SUMMARIES:
            model = getattr(self.view, "model", None) or getattr(
                getattr(self.view, "queryset", None), "model", None
            )
            if model is not None:
                one, many = model._meta.verbose_name, model._meta.verbose_name_plural
            else:
                many = _path_parts(self.path)[-1]
                one = many.removesuffix("s")
            a = "an" if str(one)[:1].lower() in "aeiou" else "a"
            return ACTION_SUMMARIES[action].format(a=a, one=one, many=many)
        handler = getattr(self.view, action or self.method.lower(), None)
        docstring = ((handler.__doc__ if handler is not None else "") or "").strip()
        if docstring:
            return docstring.splitlines()[0].rstrip(".")
        return " ".join(_path_parts(self.path)).capitalize()

    def _get_examples(self, serializer, direction, media_type, status_code=None, extras=None):
        examples = super()._get_examples(serializer, direction, media_type, status_code, extras)
        # A bulk body's example is written as the whole list; drf-spectacular wraps the
        # examples of a list body in one more list.
        if direction == "request" and is_list_serializer(serializer):
            for example in examples.values():
                value = example.get("value")
                if isinstance(value, list) and len(value) == 1 and isinstance(value[0], list):
                    example["value"] = value[0]
        return examples

    def get_override_parameters(self):
        parameters = list(super().get_override_parameters())
        if self.method not in ("GET", "HEAD", "OPTIONS"):
            parameters.append(IDEMPOTENCY_HEADER)
        return parameters

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code, description in ERROR_RESPONSES.items():
            error = self._get_response_for_code(
                OpenApiResponse(response=ErrorSerializer, description=description),
                code,
                direction=direction,
            )
            existing = responses.get(code)
            if existing is None:
                responses[code] = existing = error
            elif "content" not in existing:
                existing["content"] = error["content"]
            body = existing["content"].get("application/json")
            if body is not None and code in ERROR_EXAMPLES and "examples" not in body:
                reason, message, fields = ERROR_EXAMPLES[code]
                body["examples"] = {
                    reason: {
                        "value": {"error": {"code": reason, "message": message, "fields": fields}}
                    }
                }
        if direction == "response":
            for code, response in responses.items():
                extra = {**RATE_LIMIT_HEADERS, **(RETRY_AFTER if code == "429" else {})}
                headers = response.setdefault("headers", {})
                headers.update(_headers(extra))
                headers.update(VERSION_HEADER)
        return responses


INTRODUCTION = f"""\
Customer data, segments, personas and predictions for one organisation.
The full contract is `docs/contract.md`; what changed, and when, is `docs/api-changelog.md`.

**Authentication.** Send `Authorization: Api-Key <key>`. A read key may only read; a write
key may also write. Keys are made by the organisation's owner (site settings or
`create_api_key`).

**Bodies** are JSON (`Content-Type: application/json`); only `POST imports/` takes a
multipart file. Another content type answers 415.

**Writes.** Every write accepts an `Idempotency-Key` header: a retry with the same key gets
the first answer without applying the write again; the same key with another body answers
409. Bulk writes (`customers/bulk/`, `orders/bulk/`, `products/bulk/`, `events/bulk/`) take a
JSON list of up to 1,000 records keyed by your own ids, store the valid ones even when others
are rejected, name every problem of every rejected record, and name the jobs they started.

**Behaviours that surprise.**
- A record naming a customer id Segmenta does not know creates that customer (and an unknown
  `sku` a product).
- Keys that are not columns are not refused: they are kept in the customer's (or product's)
  `attributes`, and in an order's or event's `properties`.
- An order line without an `order_id` is an order of its own. Lines sharing an `order_id`
  make one order: give each a `line_id` to send an order across calls; without `line_id`s
  the last call naming an order replaces all its lines.
- A record whose consent time is older than the one held does not change consent (see the
  contract's Consent rules); files and bulk records keep the held value without rejecting.
- `DELETE customers/{{id}}/` erases the person, as `erase/` does.

**Pages.** Lists answer `{{"next", "previous", "results"}}` (with `count` on numbered pages).
`?page=N` pages follow the list's ordering; `?page_size=` up to 1,000 (default 50). To read a
list that changes while you read it, start with `?cursor=` (empty) and follow `next` until
it is null: rows come in id order, each once. `?updated_since=<ISO 8601>` returns what
changed at or after that time; for customers that includes a new run changing their
segments or shown predictions, which does not move the record's own `updated_at`, so
start the next sync from the time you started this one. A query parameter a list does
not know answers 400.

**Rate limits.** Each API key has its own budget (1,200 requests a minute by default; a read
key's burst never slows the write key); requests without a key count per address. Every
answer carries `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`
(seconds until the window frees a request); over the limit the answer is 429 with
`Retry-After` (seconds).

**Errors** all have one shape, `{{"error": {{"code", "message", "fields"}}}}`: 400 (not
valid; `fields` names each field at fault), 401 (no valid key), 403 (not allowed for this
key or role), 404 (no such object, or page), 409 (state does not allow it, or an
Idempotency-Key reused), 413 (too large), 415 (not JSON), 429 (too many requests).

**Versions.** Every answer carries `API-Version: {API_VERSION}` (the date of the newest
change in the changelog). Within /api/v1/ changes only add: new operations, fields,
parameters and event types. Read answers leniently (ignore fields you do not know). A field
or operation to be removed is marked deprecated here and in the changelog at least six months
before it goes; anything incompatible comes as /api/v2/, with /api/v1/ kept alongside for at least twelve
months.
"""


def postprocess_docs(result, generator, request, public):
    """drf-spectacular hook: the introduction and the resources (tags) with their descriptions,
    in TAGS order (a tag an operation uses but TAGS lacks is listed after them)."""
    result["info"]["description"] = INTRODUCTION
    used = {
        tag
        for item in result.get("paths", {}).values()
        for operation in item.values()
        if isinstance(operation, dict)
        for tag in operation.get("tags", [])
    }
    result["tags"] = [
        {"name": name, "description": description}
        for name, description in TAGS.items()
        if name in used
    ] + [{"name": name} for name in sorted(used - set(TAGS))]
    return result
