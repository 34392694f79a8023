"""Saving any edit form of the site without changing anything changes nothing.

The forms are discovered, not listed: every site page an owner can open (routes
from the URL resolver, objects from each app's `build_world`) is fetched, every
POST form on it that shows a stored value is submitted back exactly as the
browser would send it (the values the HTML rendered), and every stored row is
compared before and after. A value a field cannot show (a date rendered as
`24/11/1976` into `<input type="date">`) arrives empty and fails this test.
"""

from __future__ import annotations

import datetime as dt
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
from django.apps import apps
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership, Role
from accounts.tenancy import tenant_context, unscoped_context
from accounts.tests.factories import OrganizationFactory, UserFactory
from tests.test_tenant_isolation import _id_params, _walk, build_worlds

# Routes whose GET does something (or streams a file) rather than showing a page.
SKIP_ROUTES = {"accounts:logout", "core:job_demo", "accounts:verify_resend"}
SKIP_WORDS = ("export", "download", "errors", "progress", "delete", "erase", "revoke", "remove")
# Bookkeeping a save may touch without changing what the owner stored.
VOLATILE_FIELDS = {"updated_at", "updated_by_id", "last_login", "last_used_at"}
VOLATILE_MODELS: set[str] = set()
# What a browser sends for a field: text-like inputs send their value attribute.
TEXT_TYPES = {
    "text",
    "email",
    "number",
    "date",
    "datetime-local",
    "time",
    "tel",
    "url",
    "search",
    "hidden",
    "password",
    "",
}
# Strings each input type can show (what the browser keeps as the value).
VALID_VALUE = {
    "date": lambda v: _parses(v, "%Y-%m-%d"),
    "datetime-local": lambda v: any(
        _parses(v, f) for f in ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f")
    ),
    "number": lambda v: _is_number(v),
}


def _parses(value: str, fmt: str) -> bool:
    try:
        dt.datetime.strptime(value, fmt)  # noqa: DTZ007 - format check only
    except ValueError:
        return False
    return True


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


class FormParser(HTMLParser):
    """The POST forms of a page, with what a browser would submit unchanged."""

    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []
        self._form: dict | None = None
        self._select: dict | None = None
        self._textarea: dict | None = None
        self._option: dict | None = None

    def handle_starttag(self, tag, attrs):
        a = {k: (v if v is not None else "") for k, v in attrs}
        if tag == "form":
            self._form = {
                "method": a.get("method", "get").lower(),
                "action": a.get("action", ""),
                "fields": [],
                "shows_value": False,
            }
            self.forms.append(self._form)
            return
        if self._form is None:
            return
        if tag == "input" and "name" in a and "disabled" not in a:
            kind = a.get("type", "text").lower()
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    self._form["fields"].append((a["name"], a.get("value", "on")))
                    self._form["shows_value"] = True
            elif kind in TEXT_TYPES:
                value = a.get("value", "")
                check = VALID_VALUE.get(kind)
                # A browser cannot hold a value its input type cannot show: it submits "".
                if value and check is not None and not check(value):
                    value = ""
                self._form["fields"].append((a["name"], value))
                if kind != "hidden" and a.get("value"):
                    self._form["shows_value"] = True
        elif tag == "select" and "name" in a and "disabled" not in a:
            self._select = {"name": a["name"], "chosen": None, "first": None}
        elif tag == "option" and self._select is not None:
            self._option = {"value": a.get("value"), "text": ""}
            if "selected" in a:
                self._select["chosen"] = self._option
            if self._select["first"] is None:
                self._select["first"] = self._option
        elif tag == "textarea" and "name" in a and "disabled" not in a:
            self._textarea = {"name": a["name"], "text": ""}

    def handle_data(self, data):
        if self._textarea is not None:
            self._textarea["text"] += data
        if self._option is not None:
            self._option["text"] += data

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "option":
            self._option = None
        elif tag == "select" and self._select is not None:
            option = self._select["chosen"] or self._select["first"]
            if option is not None and self._form is not None:
                value = option["value"] if option["value"] is not None else option["text"].strip()
                self._form["fields"].append((self._select["name"], value))
                if self._select["chosen"] is not None and value:
                    self._form["shows_value"] = True
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            if self._form is not None:
                # The parser drops the newline that follows <textarea>, as browsers do.
                self._form["fields"].append((self._textarea["name"], self._textarea["text"]))
                if self._textarea["text"].strip():
                    self._form["shows_value"] = True
            self._textarea = None


def _snapshot() -> dict:
    rows = {}
    with unscoped_context():
        for model in apps.get_models():
            label = model._meta.label
            if label in VOLATILE_MODELS or model._meta.app_label in ("sessions", "admin"):
                continue
            fields = [
                f.attname for f in model._meta.concrete_fields if f.attname not in VOLATILE_FIELDS
            ]
            for row in model._default_manager.values(*fields):
                rows[(label, row.get("id", tuple(row.values())))] = row
    return rows


def _site_pages(candidates: list[int]) -> list[tuple[str, str]]:
    """(route name, url) of every site page, with ids from the world's objects."""
    from django.urls import get_resolver

    pages = []
    for namespace, pattern in _walk(get_resolver().url_patterns):
        if (namespace or "").startswith("admin") or not pattern.name:
            continue
        name = f"{namespace}:{pattern.name}" if namespace else pattern.name
        if name in SKIP_ROUTES or any(w in name for w in SKIP_WORDS):
            continue
        ids, others = _id_params(pattern)
        if others:
            continue
        if ids:
            for pk in candidates:
                pages.append((name, reverse(name, kwargs=dict.fromkeys(ids, pk))))
        else:
            try:
                pages.append((name, reverse(name)))
            except Exception:  # noqa: S112 - a route needing arguments we cannot build
                continue
    return [(n, u) for n, u in pages if not urlsplit(u).path.startswith("/api/")]


@pytest.fixture
def world(db):
    org = OrganizationFactory(name="Acme Gifts", slug="acme", time_zone="Europe/London")
    owner = UserFactory(email="owner@acme.test")
    Membership.objects.create(organization=org, user=owner, role=Role.OWNER)
    owner.current_organization = org
    owner.save()
    other = UserFactory(email="marketer@acme.test")
    Membership.objects.create(organization=org, user=other, role=Role.MARKETER)
    build_worlds(org)
    from customers.models import Customer, Order

    with tenant_context(org):
        # Values that were lost or rounded by saving unchanged.
        Customer.objects.update(
            birth_date=dt.date(1976, 11, 24), city="Leeds", region="West Yorkshire"
        )
        Order.objects.update(
            ordered_at=timezone.make_aware(dt.datetime(2024, 5, 1, 14, 30, 45), dt.UTC)
        )
    candidates = set()
    with unscoped_context():
        from accounts.tenancy import TenantModel

        for model in apps.get_models():
            if issubclass(model, TenantModel) or model in (Membership,):
                candidates.update(
                    model._default_manager.filter(organization=org).values_list("pk", flat=True)
                )
    return {"org": org, "owner": owner, "candidates": sorted(candidates)}


def test_saving_every_edit_form_unchanged_changes_nothing(world, client):
    client.force_login(world["owner"])
    submitted: list[str] = []
    changed: list[str] = []
    seen_actions: set[tuple] = set()
    for name, url in _site_pages(world["candidates"]):
        response = client.get(url)
        if response.status_code != 200 or "text/html" not in response.get("Content-Type", ""):
            continue
        parser = FormParser()
        parser.feed(response.content.decode())
        for form in parser.forms:
            if form["method"] != "post" or not form["shows_value"]:
                continue
            action = urljoin(url, form["action"] or url)
            key = (urlsplit(action).path, tuple(sorted(k for k, _ in form["fields"])))
            if key in seen_actions:
                continue
            seen_actions.add(key)
            before = _snapshot()
            data: dict[str, list[str]] = {}
            for field, value in form["fields"]:
                data.setdefault(field, []).append(value)
            result = client.post(action, data)
            assert result.status_code < 500, f"{action} (from {name}): {result.status_code}"
            submitted.append(f"{name} -> {urlsplit(action).path}")
            after = _snapshot()
            diffs = []
            for row_key in sorted(set(before) | set(after), key=str):
                old, new = before.get(row_key), after.get(row_key)
                if old != new:
                    if old and new:
                        fields = {f: (old[f], new[f]) for f in old if old[f] != new.get(f)}
                        diffs.append(f"{row_key}: {fields}")
                    else:
                        diffs.append(f"{row_key}: {'added' if new else 'removed'}")
            if diffs:
                changed.append(f"{name} -> {action}: " + "; ".join(diffs[:5]))
    # The sweep must reach the forms owners use, or it proves nothing.
    reached = " ".join(submitted)
    for expected in (
        "customers:edit",
        "customers:order_edit",
        "accounts:settings",
        "accounts:members",
        "segmentation:persona_edit",
        "segmentation:rule_edit",
        "loyalty:program",
        "offers:edit",
        "research:survey_edit",
    ):
        assert expected in reached, f"no edit form found on {expected}; submitted: {submitted}"
    assert not changed, "saving unchanged changed stored data:\n" + "\n".join(changed)
