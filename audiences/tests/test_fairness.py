"""The fairness check (CONTRACT "Fairness"): planted audiences with known skews."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from django.utils import timezone

from audiences.fairness import (
    AGE_BANDS,
    Column,
    age_band_codes,
    ages_from_dates,
    fairness_check,
    fairness_rows,
    group_codes,
)
from customers.models import Customer

KEYS = {"attribute", "group", "share_in_audience", "share_in_base", "ratio", "warning"}


def _make(org, n: int, prefix: str, **fields) -> list[int]:
    created = Customer.objects.bulk_create(
        [Customer(organization=org, external_id=f"{prefix}{i}", **fields) for i in range(n)]
    )
    return [c.pk for c in created]


def _rows(rows, attribute):
    return {r["group"]: r for r in rows if r["attribute"] == attribute}


@pytest.fixture
def skewed(in_org):
    """100 men and 100 women; 90 of the men and 20 of the women are in the audience."""
    men = _make(in_org, 100, "m", gender="Male")
    women = _make(in_org, 100, "w", gender="Female")
    return men, women, men[:90] + women[:20]


def test_a_skewed_audience_warns_for_women_and_not_for_men(in_org, skewed):
    _, _, audience = skewed
    rows = fairness_check(audience, organization=in_org)
    assert all(set(r) == KEYS for r in rows)
    gender = _rows(rows, "gender")
    assert set(gender) == {"Male", "Female"}  # nobody is blank: no unknown row
    assert gender["Male"]["ratio"] == 1.0
    assert gender["Male"]["warning"] is None
    assert gender["Female"]["ratio"] == pytest.approx(20 / 90, abs=1e-3)
    assert gender["Female"]["share_in_audience"] == pytest.approx(20 / 110, abs=1e-4)
    assert gender["Female"]["share_in_base"] == 0.5
    warning = gender["Female"]["warning"]
    assert "0.22×" in warning and "(Male)" in warning and "Female" in warning
    # nobody has a birth date or custom attributes: those are left out
    assert {r["attribute"] for r in rows} == {"gender"}


def test_a_small_group_and_the_unknown_group_never_warn(in_org, skewed):
    _, _, audience = skewed
    _make(in_org, 29, "nb", gender="Non-binary")  # none picked, but under 30
    _make(in_org, 60, "u", gender="")  # none picked, blank: unknown
    _make(in_org, 5, "s", gender="   ")  # spaces only are blank too
    gender = _rows(fairness_check(audience, organization=in_org), "gender")
    assert gender["Non-binary"]["ratio"] == 0.0
    assert gender["Non-binary"]["warning"] is None
    assert gender["unknown"]["ratio"] == 0.0
    assert gender["unknown"]["warning"] is None
    assert gender["unknown"]["share_in_base"] == pytest.approx(65 / 294, abs=1e-4)
    assert gender["Female"]["warning"]  # the big group still does


def test_thirty_customers_is_enough_to_warn(in_org, skewed):
    _, _, audience = skewed
    _make(in_org, 30, "nb", gender="Non-binary")
    gender = _rows(fairness_check(audience, organization=in_org), "gender")
    assert gender["Non-binary"]["warning"]


def test_labels_are_grouped_ignoring_case_and_spaces(in_org):
    a = _make(in_org, 10, "a", gender="female")
    b = _make(in_org, 3, "b", gender=" FEMALE ")
    _make(in_org, 2, "c", gender="Female")
    gender = _rows(fairness_check(a + b, organization=in_org), "gender")
    assert list(gender) == ["Female"]  # most common spelling, made readable
    assert gender["Female"]["share_in_base"] == 1.0


def test_an_empty_audience_has_no_ratio_and_no_warning(in_org, skewed):
    rows = fairness_check([], organization=in_org)
    assert rows
    for row in rows:
        assert row["ratio"] is None
        assert row["warning"] is None
        assert row["share_in_audience"] is None


def test_erased_customers_are_not_in_the_base(in_org, skewed):
    men, _, audience = skewed
    Customer.objects.filter(pk__in=men[90:]).update(erased_at=timezone.now())
    gender = _rows(fairness_check(audience, organization=in_org), "gender")
    assert gender["Male"]["share_in_base"] == pytest.approx(90 / 190, abs=1e-4)


def test_age_groups_at_their_boundaries_in_the_organisations_time_zone(in_org, monkeypatch):
    # 11:00 UTC on 1 March 2026 is already 2 March on Kiritimati (UTC+14)
    in_org.time_zone = "Pacific/Kiritimati"
    in_org.save()
    now = dt.datetime(2026, 3, 1, 11, 0, tzinfo=dt.UTC)
    monkeypatch.setattr(timezone, "now", lambda: now)
    born = {
        "25 today there": dt.date(2001, 3, 2),  # 25 in Kiritimati, still 24 in UTC
        "25 tomorrow": dt.date(2001, 3, 3),
        "35 today": dt.date(1991, 3, 2),
        "34": dt.date(1991, 3, 3),
        "65 today": dt.date(1961, 3, 2),
        "64": dt.date(1961, 3, 3),
        "45": dt.date(1980, 1, 1),
        "55": dt.date(1970, 6, 1),
    }
    ids = {}
    for name, date in born.items():
        ids[name] = _make(in_org, 1, name.replace(" ", "-"), birth_date=date)[0]
    _make(in_org, 1, "none")  # no birth date: unknown
    ages = _rows(fairness_check([ids["25 today there"]], organization=in_org), "birth_date")
    assert list(ages) == list(AGE_BANDS) + ["unknown"]
    share = {group: round(r["share_in_base"] * 9) for group, r in ages.items()}
    assert share == {
        "<25": 1,
        "25–34": 2,
        "35–44": 1,
        "45–54": 1,
        "55–64": 2,
        "65+": 1,
        "unknown": 1,
    }
    assert ages["25–34"]["share_in_audience"] == 1.0


def test_ages_on_a_fixed_day():
    today = dt.date(2025, 2, 28)
    ages = ages_from_dates(
        ["2000-02-29", "2000-02-28", None, "", "not a date", "2030-01-01"], today
    )
    assert ages[0] == 24 and ages[1] == 25
    assert np.isnan(ages[2:5]).all()
    codes = age_band_codes(np.array([24, 25, 34, 35, 44, 45, 54, 55, 64, 65, 99, np.nan, -5, 130]))
    assert codes.tolist() == [0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, -1, -1, -1]


def test_sensitive_custom_attributes_are_checked_and_others_are_not(in_org):
    in_org.sensitive_attributes = ["loyalty_club"]
    in_org.save()
    married = _make(in_org, 50, "m", attributes={"marital_status": "Married", "colour": "red"})
    single = _make(in_org, 50, "s", attributes={"marital_status": "single", "colour": "blue"})
    club = _make(in_org, 40, "c", attributes={"loyalty_club": "gold", "colour": "red"})
    _make(in_org, 10, "x", attributes={"maritalStatus_note": None})  # held by nobody
    rows = fairness_check(married + single[:10] + club, organization=in_org)
    attributes = {r["attribute"] for r in rows}
    assert attributes == {"marital_status", "loyalty_club"}
    marital = _rows(rows, "marital_status")
    assert set(marital) == {"Married", "Single", "unknown"}
    assert marital["Single"]["ratio"] == pytest.approx(0.2, abs=1e-3)
    assert "marital status" in marital["Single"]["warning"]
    assert marital["Married"]["warning"] is None
    assert marital["unknown"]["warning"] is None
    club_rows = _rows(rows, "loyalty_club")
    assert club_rows["Gold"]["ratio"] == 1.0


def test_an_age_attribute_is_grouped_by_age(in_org):
    young = _make(in_org, 5, "y", attributes={"customer_age": "22"})
    _make(in_org, 5, "o", attributes={"customer_age": 70})
    rows = _rows(fairness_check(young, organization=in_org), "customer_age")
    assert set(rows) == {"<25", "65+"}
    assert rows["65+"]["ratio"] == 0.0


def test_rows_by_hand():
    # three groups: 10 of 40 picked (0.25), 30 of 60 (0.5), 1 of 2 (0.5); 5 unknown, 5 picked
    codes = np.array([0] * 40 + [1] * 60 + [2] * 2 + [-1] * 5)
    picked = np.zeros(len(codes), dtype=bool)
    picked[:10] = True
    picked[40:70] = True
    picked[100] = True
    picked[102:] = True
    rows = fairness_rows([Column("religion", codes, ["A", "B", "C"])], picked)
    by = {r["group"]: r for r in rows}
    assert by["A"]["ratio"] == 0.5 and by["A"]["warning"]  # 40 customers, 0.5 < 0.8
    assert by["B"]["ratio"] == 1.0 and by["C"]["ratio"] == 1.0
    assert by["unknown"]["ratio"] == 2.0 and by["unknown"]["warning"] is None
    assert by["A"]["share_in_audience"] == pytest.approx(10 / 46, abs=1e-4)
    assert "“A”" in by["A"]["warning"] and "(B)" in by["A"]["warning"]


def test_many_values_keep_the_largest_groups():
    values = ["big"] * 50 + [f"v{i}" for i in range(30)] + [None]
    codes, labels = group_codes(values, max_groups=5)
    assert labels[0] == "Big" and labels[-1] == "other values" and len(labels) == 5
    assert (codes[50:80] >= 1).all() and codes[-1] == -1


def test_the_partial_shows_warnings_and_the_table(in_org, skewed):
    from django.template.loader import render_to_string

    _, _, audience = skewed
    _make(in_org, 1, "b", birth_date=dt.date(1950, 1, 1))
    html = render_to_string(
        "audiences/_fairness.html", {"fairness": fairness_check(audience, organization=in_org)}
    )
    assert html.count('class="msg msg-warning fairness-warning"') == 1
    assert "Customers whose gender is “Female” are picked at 0.22×" in html
    assert ">Age<" in html and ">Gender<" in html
    empty = render_to_string("audiences/_fairness.html", {"fairness": []})
    assert "No fairness check" in empty


def test_a_ratio_just_under_four_fifths_warns_and_reads_under_it():
    # 100 of 100 picked against 79.9%: 799 of 1000
    codes = np.array([0] * 100 + [1] * 1000)
    picked = np.zeros(len(codes), dtype=bool)
    picked[:100] = True
    picked[100:899] = True
    by = {
        r["group"]: r
        for r in fairness_rows([Column("gender", codes, ["A", "B"], "gender")], picked)
    }
    assert by["B"]["ratio"] == 0.799
    assert "0.79×" in by["B"]["warning"]
    picked[899] = True  # exactly 0.8: no warning
    by = {
        r["group"]: r
        for r in fairness_rows([Column("gender", codes, ["A", "B"], "gender")], picked)
    }
    assert by["B"]["warning"] is None
