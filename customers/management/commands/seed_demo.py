"""seed_demo [--sync]: the demo organisation, loaded from real data.

Creates (or reuses) the organisation `demo` ("Demo Gift Shop", GBP, Europe/London)
and its owner, imports the Online Retail sample through the import engine with its
dates shifted by whole weeks (each order keeps its weekday) so the newest order falls
in the last seven days, gives its customers generated names, emails and consent,
and starts the analysis pipeline. Running it again changes nothing.
The last stdout line is `{"org", "login", "password"}`.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import math
import random
import sys
import tempfile
import zoneinfo
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import Membership, Organization, Role
from accounts.services import organization_create
from accounts.tenancy import tenant_context
from core.exceptions import ApplicationError
from core.models import Job, JobStatus

from ...models import Customer, Order
from ...services.importing import import_from_path

DEMO_FILE = Path(__file__).resolve().parents[2] / "demo_data" / "online_retail_sample.csv.gz"
SLUG, NAME, EMAIL, PASSWORD = "demo", "Demo Gift Shop", "demo@segmenta.local", "segmenta-demo"
# A platform staff member in the Operations group (not a superuser), to try the back office.
STAFF_EMAIL, STAFF_PASSWORD = "staff@segmenta.local", "segmenta-staff"
TIME_ZONE, CURRENCY = "Europe/London", "GBP"
SEED = 20101201
LOCALES = {
    "United Kingdom": "en_GB",
    "France": "fr_FR",
    "Germany": "de_DE",
    "Spain": "es_ES",
    "Italy": "it_IT",
    "Netherlands": "nl_NL",
    "Belgium": "nl_BE",
    "Portugal": "pt_PT",
    "Norway": "no_NO",
    "Sweden": "sv_SE",
    "Denmark": "da_DK",
    "Finland": "fi_FI",
    "Switzerland": "de_CH",
    "Austria": "de_AT",
    "Poland": "pl_PL",
    "Japan": "ja_JP",
    "Australia": "en_AU",
    "USA": "en_US",
    "Canada": "en_CA",
    "EIRE": "en_IE",
}


# Real towns of the demo's countries, (name, latitude, longitude, weight): each
# customer lives in one of their country's, chosen by weight (population, roughly),
# a few kilometres from its centre, so maps and distances have something true to
# show. A country not listed ("Unspecified") leaves the town and position blank.
CITIES: dict[str, list[tuple[str, float, float, int]]] = {
    "United Kingdom": [
        ("London", 51.5074, -0.1278, 30),
        ("Birmingham", 52.4862, -1.8904, 6),
        ("Manchester", 53.4808, -2.2426, 6),
        ("Leeds", 53.8008, -1.5491, 4),
        ("Glasgow", 55.8642, -4.2518, 4),
        ("Liverpool", 53.4084, -2.9916, 3),
        ("Bristol", 51.4545, -2.5879, 3),
        ("Edinburgh", 55.9533, -3.1883, 3),
        ("Sheffield", 53.3811, -1.4701, 3),
        ("Cardiff", 51.4816, -3.1791, 2),
        ("Nottingham", 52.9548, -1.1581, 2),
        ("Brighton", 50.8225, -0.1372, 2),
        ("Norwich", 52.6309, 1.2974, 1),
        ("York", 53.9600, -1.0873, 1),
        ("Belfast", 54.5973, -5.9301, 2),
    ],
    "Germany": [
        ("Berlin", 52.5200, 13.4050, 4),
        ("Hamburg", 53.5511, 9.9937, 2),
        ("Munich", 48.1351, 11.5820, 2),
        ("Cologne", 50.9375, 6.9603, 2),
        ("Frankfurt am Main", 50.1109, 8.6821, 1),
    ],
    "France": [
        ("Paris", 48.8566, 2.3522, 4),
        ("Lyon", 45.7640, 4.8357, 2),
        ("Marseille", 43.2965, 5.3698, 2),
        ("Toulouse", 43.6047, 1.4442, 1),
        ("Lille", 50.6292, 3.0573, 1),
    ],
    "Spain": [("Madrid", 40.4168, -3.7038, 3), ("Barcelona", 41.3874, 2.1686, 3)],
    "Italy": [("Rome", 41.9028, 12.4964, 2), ("Milan", 45.4642, 9.1900, 2)],
    "Netherlands": [("Amsterdam", 52.3676, 4.9041, 2), ("Rotterdam", 51.9244, 4.4777, 1)],
    "Belgium": [("Brussels", 50.8503, 4.3517, 2), ("Antwerp", 51.2194, 4.4025, 1)],
    "Portugal": [("Lisbon", 38.7223, -9.1393, 2), ("Porto", 41.1579, -8.6291, 1)],
    "Norway": [("Oslo", 59.9139, 10.7522, 2), ("Bergen", 60.3913, 5.3221, 1)],
    "Sweden": [("Stockholm", 59.3293, 18.0686, 2), ("Gothenburg", 57.7089, 11.9746, 1)],
    "Denmark": [("Copenhagen", 55.6761, 12.5683, 2), ("Aarhus", 56.1629, 10.2039, 1)],
    "Finland": [("Helsinki", 60.1699, 24.9384, 2), ("Tampere", 61.4978, 23.7610, 1)],
    "Switzerland": [("Zurich", 47.3769, 8.5417, 2), ("Geneva", 46.2044, 6.1432, 1)],
    "Austria": [("Vienna", 48.2082, 16.3738, 2), ("Graz", 47.0707, 15.4395, 1)],
    "Poland": [("Warsaw", 52.2297, 21.0122, 2), ("Krakow", 50.0647, 19.9450, 1)],
    "Cyprus": [("Nicosia", 35.1856, 33.3823, 2), ("Limassol", 34.7071, 33.0226, 1)],
    "Malta": [("Valletta", 35.8989, 14.5146, 1)],
    "Channel Islands": [("St Helier", 49.1868, -2.1070, 1), ("St Peter Port", 49.4550, -2.5369, 1)],
    "EIRE": [("Dublin", 53.3498, -6.2603, 3), ("Cork", 51.8985, -8.4756, 1)],
    "Japan": [("Tokyo", 35.6762, 139.6503, 3), ("Osaka", 34.6937, 135.5023, 1)],
    "Australia": [("Sydney", -33.8688, 151.2093, 2), ("Melbourne", -37.8136, 144.9631, 2)],
    "USA": [("New York", 40.7128, -74.0060, 2), ("Chicago", 41.8781, -87.6298, 1)],
    "Canada": [("Toronto", 43.6532, -79.3832, 2), ("Vancouver", 49.2827, -123.1207, 1)],
}
# How far from a town's centre a customer may live, in degrees (about 5 km).
CITY_SPREAD = 0.045


def demo_address(cid: str, country: str) -> tuple[str, str, str]:
    """(town, latitude, longitude) of a demo customer: the same for the same id on
    every run, blank where the country has no towns listed."""
    towns = CITIES.get(country)
    if not towns:
        return "", "", ""
    rng = random.Random(f"{SEED}:{cid}")  # its own: the other fields' draws stay as they were
    name, lat, lon, _ = rng.choices(towns, weights=[t[3] for t in towns])[0]
    lat += rng.uniform(-CITY_SPREAD, CITY_SPREAD)
    # a degree of longitude is shorter away from the equator
    lon += rng.uniform(-CITY_SPREAD, CITY_SPREAD) / max(0.2, math.cos(math.radians(lat)))
    return name, f"{lat:.5f}", f"{lon:.5f}"


def scan_file(path: Path) -> tuple[dt.datetime, dict[str, tuple[str, dt.datetime]]]:
    """The newest order time, and each customer's country and first order."""
    newest = None
    customers: dict[str, tuple[str, dt.datetime]] = {}
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            when = dt.datetime.fromisoformat(row["InvoiceDate"])
            newest = when if newest is None or when > newest else newest
            cid = row["CustomerID"].strip()
            if cid:
                first = customers.get(cid)
                if first is None or when < first[1]:
                    customers[cid] = (row["Country"].strip(), when)
    return newest, customers


def _ascii(text: str) -> str:
    import unicodedata

    norm = unicodedata.normalize("NFKD", text)
    return "".join(c for c in norm if c.isascii() and (c.isalnum() or c in ".-")).lower()


def write_customers_csv(path: str, customers: dict[str, tuple[str, dt.datetime]], shift_days: int):
    from faker import Faker

    rng = random.Random(SEED)
    fakers: dict[str, Faker] = {}
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(
            [
                "customer_id",
                "first_name",
                "last_name",
                "email",
                "phone",
                "city",
                "country",
                "latitude",
                "longitude",
                "birth_date",
                "signup_at",
                "accepts_email",
                "accepts_sms",
            ]
        )
        for n, cid in enumerate(sorted(customers)):
            country, first_order = customers[cid]
            locale = LOCALES.get(country, "en_GB")
            fake = fakers.get(locale)
            if fake is None:
                fake = fakers[locale] = Faker(locale)
            fake.seed_instance(SEED + int(cid) if cid.isdigit() else SEED + n)
            first, last = fake.first_name(), fake.last_name()
            domain = rng.choice(["example.com", "example.org", "example.net"])
            email = f"{_ascii(first)}.{_ascii(last)}{n}@{domain}"
            signup = (
                first_order
                + dt.timedelta(days=shift_days)
                - dt.timedelta(days=rng.randint(0, 400), minutes=rng.randint(0, 1440))
            )
            birth = dt.date(1950, 1, 1) + dt.timedelta(days=rng.randint(0, 365 * 50))
            city, latitude, longitude = demo_address(cid, country)
            writer.writerow(
                [
                    cid,
                    first,
                    last,
                    email,
                    fake.phone_number(),
                    city,
                    country,
                    latitude,
                    longitude,
                    birth.isoformat(),
                    signup.strftime("%Y-%m-%d %H:%M:%S"),
                    "yes" if rng.random() < 0.7 else "no",
                    "yes" if rng.random() < 0.25 else "no",
                ]
            )


class Command(BaseCommand):
    help = "Create the demo organisation from the Online Retail sample (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--sync",
            action="store_true",
            help="Run the pipeline in this process instead of queueing it.",
        )

    def log(self, message: str) -> None:
        self.stderr.write(message)

    def handle(self, *args, **options):
        User = get_user_model()
        with transaction.atomic():
            user = User.objects.filter(email=EMAIL).first()
            if user is None:
                user = User.objects.create_user(
                    email=EMAIL, password=PASSWORD, full_name="Demo Owner", email_verified=True
                )
            org = Organization.objects.filter(slug=SLUG).first()
            if org is None:
                org = organization_create(
                    name=NAME, owner=user, time_zone=TIME_ZONE, currency=CURRENCY, slug=SLUG
                )
            elif not Membership.objects.filter(organization=org, user=user).exists():
                Membership.objects.create(organization=org, user=user, role=Role.OWNER)
            self.staff()
        with tenant_context(org):
            if not Order.objects.exists():
                self.load(org)
                self.starters(org)
            else:
                self.log("The demo data is already loaded.")
            self.pipeline(org, sync=options["sync"])
            self.offer(org, sync=options["sync"])
        self.stdout.write(json.dumps({"org": SLUG, "login": EMAIL, "password": PASSWORD}))

    def staff(self) -> None:
        """The demo's back office user: staff in the Operations group, no superuser,
        so customer records open only through a support access grant."""
        from django.contrib.auth.models import Group

        from backoffice.groups import OPERATIONS, staff_groups_sync

        User = get_user_model()
        staff = User.objects.filter(email=STAFF_EMAIL).first()
        if staff is None:
            staff = User.objects.create_user(
                email=STAFF_EMAIL,
                password=STAFF_PASSWORD,
                full_name="Sam Rivera",
                email_verified=True,
                is_staff=True,
            )
        staff_groups_sync()
        staff.groups.add(Group.objects.get(name=OPERATIONS))

    def load(self, org) -> None:
        tz = zoneinfo.ZoneInfo(org.time_zone)
        newest, customers = scan_file(DEMO_FILE)
        yesterday = dt.datetime.now(tz).date() - dt.timedelta(days=1)
        # Whole weeks only: each order keeps its weekday, so the demo shop still
        # never trades on Saturday and its personas' timing advice stays true.
        # The newest order lands within the seven days up to yesterday.
        shift_days = (yesterday - newest.date()).days // 7 * 7
        self.log(f"Importing {DEMO_FILE.name}, dates shifted by {shift_days} days…")
        imp, _ = import_from_path(
            organization=org,
            path=str(DEMO_FILE),
            kind="orders",
            shift_days=shift_days,
            run_pipeline=False,
        )
        self.log(f"Orders: {imp.message}")
        with tempfile.TemporaryDirectory() as tmp:
            path = str(Path(tmp) / "demo-customers.csv")
            write_customers_csv(path, customers, shift_days)
            imp, _ = import_from_path(
                organization=org, path=path, kind="customers", run_pipeline=False
            )
            self.log(f"Customers: {imp.message}")
        self.log(f"{Customer.objects.count()} customers, {Order.objects.count()} orders.")

    def starters(self, org) -> None:
        """A store, two audiences and a loyalty programme, so the demo's pages show
        what they are for. The audiences are built by the pipeline's audiences step,
        the programme's tiers and points by its loyalty step, on its results."""
        from django.apps import apps

        if apps.is_installed("stores"):
            from stores.models import Store

            Store.objects.get_or_create(
                organization=org,
                name="Demo Gifts, Covent Garden",
                defaults={
                    "address": "12 Long Acre, London WC2E 9LH",
                    "latitude": 51.5122,
                    "longitude": -0.1246,
                    "postal_prefixes": ["WC2", "WC1", "EC1"],
                },
            )
        if apps.is_installed("audiences"):
            from audiences.models import Audience

            for name, definition in (
                ("Valuable customers at risk", {"kind": "goal", "goal": "high_value_at_risk", "size": 100}),
                ("Customers in Germany and France", {"kind": "location", "countries": ["Germany", "France"]}),
            ):  # fmt: skip
                Audience.objects.get_or_create(
                    organization=org, name=name, defaults={"definition": definition}
                )

        if apps.is_installed("loyalty"):
            from loyalty.models import LoyaltyProgram, LoyaltyTier

            # thresholds near the demo shop's 25th, 75th and 90th percentiles of a
            # year's spend
            program, _ = LoyaltyProgram.objects.get_or_create(
                organization=org,
                defaults={"metric": "spend", "period_days": 365, "points_per_unit": 1},
            )
            for position, (name, threshold) in enumerate(
                (("Bronze", 300), ("Silver", 1500), ("Gold", 3000))
            ):
                LoyaltyTier.objects.get_or_create(
                    organization=org,
                    program=program,
                    name=name,
                    defaults={"threshold": threshold, "position": position},
                )

        if apps.is_installed("research"):
            from research.demo import seed_demo_research

            # reviews, support messages and a survey, analysed by the research step
            self.log(f"Research demo data: {seed_demo_research(org)}")

    def offer(self, org, *, sync: bool) -> None:
        """A win-back offer for the customers at risk, built after the pipeline's
        jobs (the worker takes jobs in order), so its codes go to the audience's
        members."""
        from django.apps import apps

        if not apps.is_installed("offers"):
            return
        from audiences.models import Audience
        from offers.models import Offer
        from offers.services import offer_create

        audience = Audience.objects.filter(name="Valuable customers at risk").first()
        if audience is None or Offer.objects.filter(is_reward=False).exists():
            return
        try:
            offer = offer_create(
                organization=org,
                data={
                    "name": "We miss you: 10% off",
                    "kind": "percent",
                    "value": 10,
                    "audience_id": audience.pk,
                    "holdout_share": 0.1,
                    "min_basket": 20,
                },
                sync=sync,
            )
        except ApplicationError as exc:
            self.log(f"Demo offer not created: {exc.message}")
            return
        self.log(f"Offer {offer.name!r}: {offer.status}")

    def pipeline(self, org, *, sync: bool) -> None:
        from segmentation.pipeline import available_steps, pipeline_start

        steps = [s.name for s in available_steps()]
        started = Job.objects.filter(
            kind__in=steps,
            status__in=[JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.SUCCEEDED],
        ).exists()
        if not steps or started:
            self.log("The analysis pipeline has already run (or has no steps yet).")
            return
        try:
            result = pipeline_start(organization=org, sync=sync, reason="demo")
        except ApplicationError as exc:
            self.log(f"Pipeline not started: {exc.message}")
            return
        self.log(f"Pipeline {result['status']}: jobs {result['jobs']}")
        sys.stderr.flush()
