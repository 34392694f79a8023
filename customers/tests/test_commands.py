"""import_data and seed_demo as operators run them."""

import datetime as dt
import json
import zoneinfo
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.models import Organization, User
from accounts.tenancy import tenant_context
from customers.models import ConsentChange, Customer, Import, Order

from .factories import DATA

pytestmark = pytest.mark.django_db


def run(*args):
    out, err = StringIO(), StringIO()
    code = 0
    try:
        call_command("import_data", *args, stdout=out, stderr=err)
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue(), err.getvalue()


def test_import_data_prints_one_json_object_last(org):
    code, out, err = run("--org", "acme", "--kind", "orders", str(DATA / "orders_bad_rows.csv"))
    assert code == 0
    result = json.loads(out.strip().splitlines()[-1])
    assert {k: result[k] for k in ("rows", "created", "updated", "unchanged", "rejected")} == {
        "rows": 6,
        "created": 2,
        "updated": 0,
        "unchanged": 0,
        "rejected": 4,
    }
    assert result["errors"][0] == {
        "row": 2,
        "field": "amount",
        "message": "12 does not match quantity × unit_price (3 × 3.5 = 10.5)",
        "value": "12.00",
    }
    code, out, _ = run("--org", "acme", "--kind", "orders", str(DATA / "orders_bad_rows.csv"))
    again = json.loads(out.strip().splitlines()[-1])
    assert (again["created"], again["unchanged"], again["rejected"]) == (0, 2, 4)


def test_import_data_map_date_format_and_encoding(org):
    code, out, _ = run(
        "--org", "acme", "--kind", "orders", str(DATA / "orders_cp1252_semicolon.csv"),
        "--map", "Rechnung=order_id", "--map", "Kunde=customer_id", "--map", "Datum=ordered_at",
        "--map", "Artikel=sku", "--map", "Bezeichnung=product_name", "--map", "Menge=quantity",
        "--map", "Einzelpreis=unit_price", "--date-format", "%m/%d/%Y %H:%M",
        "--delimiter", ";", "--encoding", "cp1252",
    )  # fmt: skip
    result = json.loads(out.strip().splitlines()[-1])
    assert (result["created"], result["rejected"]) == (2, 2)  # 13/04 and 25/12 are not month-first
    with tenant_context(org):
        assert Order.objects.get(external_id="1001").ordered_at.month == 3


def test_import_data_refuses_an_unreadable_file(org, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("name,colour\nmug,blue\n")
    code, out, err = run("--org", "acme", "--kind", "orders", str(bad))
    assert code == 1
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and "no column for ordered_at" in err
    code, _, err = run(
        "--org", "acme", "--kind", "orders", str(DATA / "orders_ambiguous_dates.csv")
    )
    assert code == 1 and "--date-format" in err
    code, _, err = run("--org", "nope", "--kind", "orders", str(bad))
    assert code == 1 and "No organisation" in err
    with tenant_context(org):
        assert not Order.objects.exists()


def test_import_data_feedback_kind(org):
    code, out, _ = run("--org", "acme", "--kind", "feedback", str(DATA / "feedback_reviews.tsv"))
    assert json.loads(out.strip().splitlines()[-1])["created"] == 2


def test_seed_demo_is_idempotent(db):
    out = StringIO()
    call_command("seed_demo", stdout=out, stderr=StringIO())
    assert json.loads(out.getvalue().strip().splitlines()[-1]) == {
        "org": "demo",
        "login": "demo@segmenta.local",
        "password": "segmenta-demo",
    }
    org = Organization.objects.get(slug="demo")
    assert (org.name, org.currency, org.time_zone) == ("Demo Gift Shop", "GBP", "Europe/London")
    assert User.objects.get(email="demo@segmenta.local").check_password("segmenta-demo")
    # the back office's demo user: staff in Operations, not a superuser, no member
    staff = User.objects.get(email="staff@segmenta.local")
    assert staff.check_password("segmenta-staff") and staff.is_staff and not staff.is_superuser
    assert list(staff.groups.values_list("name", flat=True)) == ["Operations"]
    assert staff.has_perm("accounts.suspend_organization")
    assert not staff.memberships.exists()
    with tenant_context(org):
        snapshot = (
            Customer.objects.count(),
            Order.objects.count(),
            sorted(
                Customer.objects.values_list("external_id", "email", "first_name", "accepts_email")
            ),
            ConsentChange.objects.count(),
            Import.objects.count(),
        )
        assert snapshot[0] == 445 and snapshot[1] == 2011
        named = Customer.objects.exclude(first_name="").exclude(email="").count()
        assert named == 445
        assert (
            Customer.objects.filter(accepts_email=True).count()
            == ConsentChange.objects.filter(channel="email").count()
        )
        london = zoneinfo.ZoneInfo("Europe/London")
        newest = Order.objects.order_by("-ordered_at").first().ordered_at.astimezone(london)
        today = timezone.now().astimezone(london).date()
        # whole weeks of shift: the newest order lands in the week up to yesterday
        assert today - dt.timedelta(days=7) <= newest.date() <= today - dt.timedelta(days=1)
        # the starters: a loyalty programme (placed by the pipeline) and a win-back
        # offer for the at-risk audience, built after the pipeline's jobs
        from loyalty.models import LoyaltyTier
        from offers.models import Offer

        assert list(LoyaltyTier.objects.values_list("name", flat=True)) == [
            "Bronze",
            "Silver",
            "Gold",
        ]
        offer = Offer.objects.get()
        assert offer.audience.name == "Valuable customers at risk" and offer.job_id
    out2 = StringIO()
    call_command("seed_demo", stdout=out2, stderr=StringIO())
    assert json.loads(out2.getvalue().strip().splitlines()[-1])["org"] == "demo"
    with tenant_context(org):
        assert (
            Customer.objects.count(),
            Order.objects.count(),
            sorted(
                Customer.objects.values_list("external_id", "email", "first_name", "accepts_email")
            ),
            ConsentChange.objects.count(),
            Import.objects.count(),
        ) == snapshot
        assert Offer.objects.count() == 1
    assert Organization.objects.filter(slug="demo").count() == 1


def test_seed_demo_keeps_the_weekday_of_every_order(db):
    """Dates move by whole weeks, so a shop that never trades on Saturday still has
    no Saturday orders (personas would otherwise advise Saturday messages)."""
    import csv
    import gzip

    from customers.management.commands.seed_demo import DEMO_FILE

    source = {}
    with gzip.open(DEMO_FILE, "rt", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            source[row["InvoiceNo"]] = dt.datetime.fromisoformat(row["InvoiceDate"])
    call_command("seed_demo", stdout=StringIO(), stderr=StringIO())
    org = Organization.objects.get(slug="demo")
    london = zoneinfo.ZoneInfo("Europe/London")
    with tenant_context(org):
        stored = dict(Order.objects.values_list("external_id", "ordered_at"))
    assert stored and set(stored) <= set(source)
    moved = {
        number: (source[number].strftime("%A"), when.astimezone(london).strftime("%A"))
        for number, when in stored.items()
        if source[number].weekday() != when.astimezone(london).weekday()
    }
    assert not moved, f"{len(moved)} orders changed weekday, e.g. {list(moved.items())[:3]}"
    # and the time of day stays what the shop recorded
    number = min(stored)
    assert stored[number].astimezone(london).time() == source[number].time()


def test_demo_customers_live_in_real_towns_of_their_country(org, tmp_path):
    """Maps and distances had nothing to show for the demo: its customers had no
    position. Each now lives a few kilometres from a real town of its country, the
    same on every run."""
    import math

    from customers.management.commands.seed_demo import (
        CITIES,
        DEMO_FILE,
        scan_file,
        write_customers_csv,
    )
    from customers.services.importing import import_from_path

    _, customers = scan_file(DEMO_FILE)
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    write_customers_csv(str(first), customers, 0)
    write_customers_csv(str(second), customers, 0)
    assert first.read_bytes() == second.read_bytes()
    with tenant_context(org):
        import_from_path(organization=org, path=str(first), kind="customers", run_pipeline=False)
        rows = list(Customer.objects.values_list("country", "city", "latitude", "longitude"))
    assert len(rows) == 445

    def km(lat1, lon1, lat2, lon2):
        p1, p2 = math.radians(lat1), math.radians(lat2)
        a = (
            math.sin((p2 - p1) / 2) ** 2
            + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
        )
        return 2 * 6371 * math.asin(math.sqrt(a))

    towns = {(c, name): (lat, lon) for c, listed in CITIES.items() for name, lat, lon, _ in listed}
    placed = [r for r in rows if r[2] is not None]
    # everyone but the one customer whose country is "Unspecified"
    assert len(placed) == 444
    assert [r for r in rows if r[2] is None] == [("Unspecified", "", None, None)]
    for country, city, lat, lon in placed:
        assert km(lat, lon, *towns[(country, city)]) < 8, (country, city, lat, lon)
    # inside their country, by its outline's bounds (not the table's)
    bounds = {"United Kingdom": (49.8, 60.9, -8.7, 1.8), "Germany": (47.2, 55.1, 5.8, 15.1)}
    for country, (south, north, west, east) in bounds.items():
        inside = [south < r[2] < north and west < r[3] < east for r in placed if r[0] == country]
        assert inside and all(inside), country
    # spread over the UK's towns, not one point
    uk = [r for r in placed if r[0] == "United Kingdom"]
    assert len({r[1] for r in uk}) >= 10
    assert len({(r[2], r[3]) for r in uk}) == len(uk)
