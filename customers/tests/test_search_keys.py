"""Customer search through the stored search keys (issue 15): a term is one index range
over its whole length, the exact "starts with, ignoring case" decides, names outside
ASCII are still found, one organisation never sees another's customers, and a search
with many matches is read along the sort's index."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Q

from accounts.tenancy import tenant_context
from customers import selectors
from customers.models import Customer
from customers.searchkeys import ascii_lower
from customers.selectors import (
    _I_SPELLINGS,
    CUSTOMER_SORTS,
    _after,
    _key_prefixes,
    customer_filter,
    customer_page,
)

from .factories import CustomerFactory

pytestmark = pytest.mark.django_db

# external_id, first name, last name, e-mail (stored lower-case, as every write does)
PEOPLE = [
    ("c01", "Ada", "Lovelace", "ada.lovelace@example.com"),
    ("c02", "Ada", "Byron", "countess@example.org"),
    ("c03", "Adam", "Smith", "adam@smith.example"),
    ("c04", "Bo", "SMITHERS", ""),
    ("c05", "Sam", "Shopper12", "customer12@example.com"),
    ("c06", "Sam", "Shopper123", "customer123@example.com"),
    ("c07", "sam", "shopper1", "customer1@example.com"),
    ("c08", "Ærø", "Ærøskøbing", "aero@example.dk"),
    ("c09", "Jürgen", "Straße", ""),
    ("c10", "İlkay", "Gündoğan", ""),
    ("c11", "Emre", "Aydın", ""),
    ("c12", "Ölüm", "ÖZTÜRK", ""),
    ("c13", "Siobhán", "O'Brien", "o.brien@example.ie"),
    ("c14", "Zoë", "Smi-th", ""),
]


def _people(organization) -> dict[str, int]:
    with tenant_context(organization):
        return {
            ext: CustomerFactory(external_id=ext, first_name=first, last_name=last, email=email).pk
            for ext, first, last, email in PEOPLE
        }


def _found(term: str) -> set[str]:
    return set(customer_filter({"search": term}).values_list("external_id", flat=True))


def _exact(term: str) -> set[str]:
    """What the search means, judged by the database on every customer (no index)."""
    cond = (
        Q(external_id=term)
        | Q(email__istartswith=term)
        | Q(last_name__istartswith=term)
        | Q(first_name__istartswith=term)
    )
    parts = term.split()
    if len(parts) == 2:
        cond |= Q(first_name__istartswith=parts[0]) & Q(last_name__istartswith=parts[1])
    return set(selectors.customers_active().filter(cond).values_list("external_id", flat=True))


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        # the start of a last name, in any case
        ("shopper12", {"c05", "c06"}),
        ("SHOPPER1", {"c05", "c06", "c07"}),
        ("ShOpPeR123", {"c06"}),
        ("smith", {"c03", "c04"}),
        ("Smi-", {"c14"}),
        ("o'b", {"c13"}),
        # first and last name
        ("sam shopper12", {"c05", "c06"}),
        ("SAM SHOPPER123", {"c06"}),
        ("ada lovelace", {"c01"}),
        ("ada", {"c01", "c02", "c03"}),  # Adam too, and adam@…
        # the start of an e-mail, a whole one, any case
        ("CUSTOMER12", {"c05", "c06"}),
        ("customer123@example.com", {"c06"}),
        ("Ada.L", {"c01"}),
        ("O.Brien@", {"c13"}),
        # an id
        ("c07", {"c07"}),
        # names outside ASCII, as written
        ("Ærø", {"c08"}),
        ("Ærøskøbing", {"c08"}),
        ("Straße", {"c09"}),
        ("İlkay", {"c10"}),
        ("Aydın", {"c11"}),
        ("Öz", {"c12"}),
        ("Zoë", {"c14"}),
        ("ßtr", set()),
        ("nobody", set()),
    ],
)
def test_search_finds_exactly_the_customers_whose_name_email_or_id_starts_so(org, term, expected):
    _people(org)
    with tenant_context(org):
        assert _found(term) == expected


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="SQLite's LIKE ignores only ASCII case"
)
@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("ærø", {"c08"}),
        ("ÆRØSKØBING", {"c08"}),
        ("STRAßE", {"c09"}),
        ("öztürk", {"c12"}),
        ("İLKAY", {"c10"}),
        ("aydin", {"c11"}),  # upper('ı') is 'I'
        ("AYDIN", {"c11"}),
        ("zoË", {"c14"}),
    ],
)
def test_on_postgresql_case_is_ignored_outside_ascii_too(org, term, expected):
    _people(org)
    with tenant_context(org):
        assert _found(term) == expected


@pytest.mark.parametrize(
    "term",
    [
        "s", "SH", "shopper", "Shopper12", "sam", "sam shopper1", "a", "Ada", "ada b",
        "ÆR", "æRØ", "ærøsk", "STRA", "straß", "straSSE", "ilk", "İl", "ılkay", "AYDIN",
        "aydın", "ay", "ö", "Ö", "ÖZTÜRK", "o'", "O'BRIEN", "smi-TH", "zoe", "ZOË",
        "customer1", "CUSTOMER", "c0", "ßtrasse", "%", "_", "a_a", "100%",
    ],
)  # fmt: skip
def test_search_misses_nothing_the_exact_condition_matches_and_adds_nothing(org, term):
    """The index ranges only narrow: the result is exactly what the database's own
    "starts with, ignoring case" gives over every customer, on either database."""
    _people(org)
    with tenant_context(org):
        assert _found(term) == _exact(term)


def test_another_organisations_customers_are_never_found(org, other_org):
    mine = _people(org)
    theirs = _people(other_org)
    assert not set(mine.values()) & set(theirs.values())
    with tenant_context(org):
        for term in ("shopper1", "sam shopper12", "customer12", "Ærø", "Aydın", "c05"):
            found = customer_filter({"search": term})
            assert found.exists()
            assert set(found.values_list("pk", flat=True)) <= set(mine.values())
            rows, _ = customer_page(found, search=True, size=50)
            assert {c.organization_id for c in rows} == {org.pk}


def test_the_database_keeps_the_keys_as_python_reads_them(org):
    """The key is the name with A–Z lowered and nothing else, on both databases (the
    search lowers a term the same way), and it follows every write of the name."""
    from customers.services.customers import customer_update
    from customers.services.imports.engine import run_records
    from customers.services.privacy import customer_erase

    pks = _people(org)
    with tenant_context(org):
        for first, last, first_key, last_key in Customer.objects.values_list(
            "first_name", "last_name", "first_name_key", "last_name_key"
        ):
            assert (first_key, last_key) == (ascii_lower(first), ascii_lower(last))
        assert Customer.objects.get(external_id="c12").last_name_key == "ÖztÜrk"

        ada = Customer.objects.get(pk=pks["c01"])
        customer_update(customer=ada, data={"last_name": "KING-Noel"})
        ada.refresh_from_db()
        assert ada.last_name_key == "king-noel"
        assert _found("king") == {"c01"}

        outcome = run_records(
            organization=org,
            kind="customers",
            records=[
                {"customer_id": "c20", "first_name": "GRACE", "last_name": "Hopper"},
                {"customer_id": "c05", "first_name": "Samuel", "last_name": "Shopper12"},
            ],
        )
        assert outcome.counts.created == 1 and outcome.counts.updated == 1, outcome.errors
        assert _found("grace hop") == {"c20"}
        assert _found("samuel") == {"c05"}
        assert Customer.objects.get(external_id="c20").first_name_key == "grace"

        customer_erase(customer=Customer.objects.get(pk=pks["c06"]))
        erased = Customer.objects.get(pk=pks["c06"])
        assert (erased.first_name_key, erased.last_name_key) == ("", "")
        assert _found("shopper12") == {"c05"}


def test_a_key_prefix_is_the_whole_term_lowered_or_its_spellings():
    assert _key_prefixes("Shopper123456") == ["shopper123456"]
    assert _key_prefixes("customer1@Example.COM") == ["customer1@example.com"]
    # the dotted and dotless i (upper('ı') is 'I')
    assert set(_key_prefixes("Smith")) == {"smith", "smıth"}
    assert set(_key_prefixes("İl")) == {"İl", "il"}
    # outside ASCII the key keeps the case: each spelling is a range
    assert set(_key_prefixes("Ærø")) == {"ærø", "ærØ", "Ærø", "ÆrØ"}
    assert len(_key_prefixes("ÆØÅÆØÅ")) == selectors.MAX_RANGES  # then shorter
    assert {p[:3] for p in _key_prefixes("ÆØÅÆØÅ")} == set(_key_prefixes("ÆØÅ"))
    # a letter whose upper case is two (ß: SS) ends the prefix; first: no range at all
    assert _key_prefixes("Straße") == ["stra"]
    assert _key_prefixes("ßtrasse") == []
    assert all(ch in spellings for ch, spellings in _I_SPELLINGS.items())


def test_a_range_ends_at_the_first_string_after_the_prefix():
    assert _after("smith") == "smiti"
    assert _after("a\U0010ffff") == "b"
    assert _after("\U0010ffff") is None
    assert _after("\ud7ff") == "\ue000"  # past the surrogates
    assert "smith" < "smith-jones" < "smithz\U0010ffff" < _after("smith")


def test_the_spellings_of_a_latin_letter_are_all_that_share_its_upper_case():
    """What the database's upper() equates (Python's Unicode data), the ranges hold:
    a letter's cases, and for i the dotless ı. Known and left out: the long s (ſ,
    no longer written) and the title-case digraphs (ǅ: Croatian writes D and ž)."""
    same_upper: dict[str, set[str]] = {}
    for ch in map(chr, range(0x250)):  # Basic Latin to Latin Extended-B
        if len(ch.upper()) == 1:
            same_upper.setdefault(ch.upper(), set()).add(ch)
    missed = {}
    for ch in map(chr, range(0x250)):
        forms = selectors._spellings(ch)
        if forms is None:
            assert len(ch.upper()) > 1 or len(ch.lower()) > 1, ch  # ß, ŉ, ǰ, İ's lower
            continue
        wanted = {ascii_lower(x) for x in same_upper.get(ch.upper(), {ch})}
        if not wanted <= set(forms):
            missed[ch] = "".join(sorted(wanted - set(forms)))
    assert missed == {
        "s": "ſ", "S": "ſ",
        "Ǆ": "ǅ", "ǆ": "ǅ", "Ǉ": "ǈ", "ǉ": "ǈ", "Ǌ": "ǋ", "ǌ": "ǋ", "Ǳ": "ǲ", "ǳ": "ǲ",
    }  # fmt: skip


# --- many matches: read along the sort's index ----------------------------------------


@pytest.fixture
def crowd(org):
    """45 customers: "Lee" the first names of every third, spread over every sort;
    "Zed" the last names of the five last in name order."""
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with tenant_context(org):
        for i in range(45):
            CustomerFactory(
                external_id=f"k{i:02d}",
                first_name="Lee" if i % 3 == 0 else f"Kim{i}",
                last_name=f"Zed{i}" if i >= 40 else f"N{i % 4}",
                email=f"k{i:02d}@example.com",
                orders_count=i % 3,
                total_spent=Decimal(i % 5),
                last_order_at=None if i % 4 == 0 else base + dt.timedelta(days=i % 6),
                created_at=base + dt.timedelta(hours=i % 7),
            )
    return org


def _expected(qs, sort: str) -> list[int]:
    field, desc, nullable, _ = CUSTOMER_SORTS[sort]
    rows = list(qs.values_list(field, "pk"))
    valued = sorted((r for r in rows if r[0] is not None), reverse=desc)
    empty = sorted((r for r in rows if r[0] is None), key=lambda r: r[1], reverse=desc)
    return [pk for _, pk in valued + empty]


@pytest.mark.parametrize("sort", list(CUSTOMER_SORTS))
@pytest.mark.parametrize("term", ["lee", "zed", "k"])
def test_a_search_with_many_matches_pages_through_them_once_in_order(
    crowd, monkeypatch, sort, term
):
    """Walked along the index when the first customers there hold a page ("lee", "k"),
    gathered and sorted when they do not ("zed", sorted by name: all at the end)."""
    monkeypatch.setattr(selectors, "SEARCH_MANY", 3)
    monkeypatch.setattr(selectors, "SEARCH_WALK", 8)
    walked = []
    real = selectors._walked
    monkeypatch.setattr(
        selectors, "_walked", lambda *a, **kw: walked.append(real(*a, **kw)) or walked[-1]
    )
    with tenant_context(crowd):
        qs = customer_filter({"search": term})
        seen: list[int] = []
        after = ""
        for _ in range(100):
            rows, after = customer_page(qs, sort=sort, after=after or "", size=2, search=True)
            seen += [c.pk for c in rows]
            if not after:
                break
        assert seen == _expected(qs, sort)
        assert len(seen) == {"lee": 15, "zed": 5, "k": 45}[term]
    assert walked  # more than SEARCH_MANY matches: the walk was tried
    if term != "zed":
        assert any(page is not None for page in walked)
    if term == "zed" and sort == "name":
        assert walked[0] is None  # too far along the index: gathered and sorted


def test_the_api_orders_a_search_with_many_matches_as_asked(api, crowd, monkeypatch):
    monkeypatch.setattr(selectors, "SEARCH_MANY", 3)
    for ordering, key in (("-total_spent", lambda c: (-c.total_spent, -c.pk)), ("", None)):
        url = "/api/v1/customers/?search=lee&page_size=4" + (
            f"&ordering={ordering}" if ordering else ""
        )
        body = api.get(url).json()
        with tenant_context(crowd):
            matches = list(customer_filter({"search": "lee"}))
        expected = sorted(matches, key=key) if key else sorted(matches, key=lambda c: -c.pk)
        assert body["count"] == 15
        assert [c["external_id"] for c in body["results"]] == [c.external_id for c in expected[:4]]


def test_the_site_and_the_api_find_by_any_case(org, owner_client, api):
    _people(org)
    page = owner_client.get("/customers/?search=SHOPPER12").content.decode()
    assert "Shopper12" in page and "Shopper123" in page and "Lovelace" not in page
    body = api.get("/api/v1/customers/?search=sam%20shopper12").json()
    assert {c["external_id"] for c in body["results"]} == {"c05", "c06"}


# --- PostgreSQL: the key indexes serve the search under row-level security ------------


def _shoppers(organization, n: int = 5000) -> None:
    """`n` customers named like the benchmark's (every one "Sam Shopper<i>",
    customer<i>@example.com), the table then analysed, so the planner weighs the
    search as it would on a big shop."""
    from django.utils import timezone

    from core.tests.bulk import insert_rows

    now = connection.ops.adapt_datetimefield_value(timezone.now())
    rows = [
        (organization.pk, f"S{i:06d}", f"customer{i}@example.com", "", "Sam", f"Shopper{i}",
         "", "", "", "GB", "", False, False, "", "", "{}", 0, 0, now, now)
        for i in range(n)
    ]  # fmt: skip
    insert_rows(
        Customer,
        [
            "organization_id", "external_id", "email", "phone", "first_name", "last_name",
            "gender", "city", "region", "country", "postal_code", "accepts_email",
            "accepts_sms", "email_consent_source", "sms_consent_source", "attributes",
            "orders_count", "total_spent", "created_at", "updated_at",
        ],
        rows,
    )  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute("SELECT segmenta_analyze('customers_customer')")


def _plan(term: str) -> str:
    qs = customer_filter({"search": term}).order_by().values("pk")
    sql, params = qs.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's plans")
@pytest.mark.parametrize(
    ("term", "ranges"),
    [
        ("Shopper1234", {"customer_org_last_key": "last_name_key >= 'shopper1234'"}),
        ("SAM SHOPPER1234", {"customer_org_last_key": "last_name_key >= 'shopper1234'"}),
        ("Customer1234@Example", {"customer_org_email": "email >= 'customer1234@example'"}),
        ("Ærøskøbing", {"customer_org_last_key": "last_name_key >= 'Ærøskøb'"}),  # 8 spellings
    ],
)  # fmt: skip
def test_a_long_term_is_a_range_of_the_key_index_under_row_level_security(org, term, ranges):
    """Every customer's name starts "Sam Shopper": the whole term is the range, so only
    the few customers that match are read (before, its first three letters were: all)."""
    with tenant_context(org):
        _shoppers(org)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT r.rolbypassrls OR r.rolsuper, c.relforcerowsecurity FROM pg_roles r, "
                "pg_class c WHERE r.rolname = current_user AND c.relname = 'customers_customer'"
            )
            assert cursor.fetchone() == (False, True)  # the policy applies to this role
        plan = _plan(term)
    flat = plan.replace("(", "").replace(")", "").replace("::text", "")
    for index, condition in ranges.items():
        assert f"Index Scan on {index}" in plan, plan
        assert any("Index Cond" in line and condition in line for line in flat.splitlines()), plan
    assert "Seq Scan" not in plan, plan
