"""Cell values and dates as real files write them (no database)."""

import datetime as dt
import zoneinfo
from decimal import Decimal

import pytest

from customers.services.imports.columns import auto_map, build_plan
from customers.services.imports.dates import (
    DAY_FIRST,
    MONTH_FIRST,
    ColumnSniff,
    DateFormatError,
    DateParser,
)
from customers.services.imports.reader import detect_encoding, sniff_delimiter
from customers.services.imports.values import parse_bool, parse_decimal, parse_int

LONDON = zoneinfo.ZoneInfo("Europe/London")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2.55", "2.55"),
        ("£1,234.50", "1234.50"),
        ("1.234,50 €", "1234.50"),
        ("€ 2,00", "2.00"),
        ("12,5", "12.5"),
        ("1,234", "1234"),
        ("1,234,567", "1234567"),
        ("1.234.567", "1234567"),
        ("(12.00)", "-12.00"),
        ("-£3.00", "-3.00"),
        ("12.00-", "-12.00"),
        ("USD 1 250,75", "1250.75"),
        ("CHF 1'250.75", "1250.75"),
        ("0,085", "0.085"),
    ],
)
def test_numbers_with_currency_and_separators(text, expected):
    assert parse_decimal(text) == Decimal(expected)


@pytest.mark.parametrize("text", ["abc", "NaN", "Infinity", "£", "--"])
def test_non_numbers_are_refused(text):
    with pytest.raises(ValueError):
        parse_decimal(text)


def test_whole_numbers():
    assert parse_int("1,000") == 1000
    assert parse_int("-3") == -3
    assert parse_int("2.0") == 2
    with pytest.raises(ValueError, match="whole number"):
        parse_int("1.5")


@pytest.mark.parametrize("text", ["yes", "Y", "TRUE", "1", "subscribed", "opted in"])
def test_yes(text):
    assert parse_bool(text) is True


@pytest.mark.parametrize("text", ["no", "N", "false", "0", "unsubscribed", "pending"])
def test_no(text):
    assert parse_bool(text) is False


def test_maybe_is_refused():
    with pytest.raises(ValueError, match="yes or no"):
        parse_bool("maybe")


def _sniff(values):
    sniff = ColumnSniff(column="Date")
    for v in values:
        sniff.add(v)
    return sniff


def test_a_day_above_twelve_settles_day_first():
    assert _sniff(["03/04/2011 10:00", "13/04/2011 09:00"]).decide() == DAY_FIRST


def test_a_day_above_twelve_in_second_place_settles_month_first():
    assert _sniff(["12/1/2010 8:26", "12/13/2010 9:41"]).decide() == MONTH_FIRST


def test_an_unsettled_column_is_refused_with_a_way_out():
    with pytest.raises(DateFormatError) as exc:
        _sniff(["03/04/2011", "05/06/2011"]).decide()
    assert "03/04/2011" in str(exc.value)
    assert "--date-format" in str(exc.value)


def test_a_mixed_column_is_refused():
    with pytest.raises(DateFormatError, match="mix"):
        _sniff(["13/04/2011", "04/13/2011"]).decide()


def test_same_day_and_month_is_not_ambiguous():
    assert _sniff(["01/01/2011", "05/05/2011"]).decide() == DAY_FIRST


def test_iso_needs_no_decision():
    assert _sniff(["2011-04-03", "2011-04-03T10:00:00Z"]).decide() is None


def test_timestamps_without_zone_are_in_the_organisation_zone():
    parse = DateParser(tz=LONDON)
    summer = parse("2024-07-01 10:00")
    assert summer.utcoffset() == dt.timedelta(hours=1)
    assert summer.astimezone(dt.UTC).hour == 9
    assert parse("2024-01-15 10:00").astimezone(dt.UTC).hour == 10


def test_zones_in_the_value_win():
    parse = DateParser(tz=LONDON)
    assert parse("2023-05-01 10:22:11 -0400").astimezone(dt.UTC).hour == 14
    assert parse("2024-03-01T10:00:00Z").astimezone(dt.UTC).hour == 10


@pytest.mark.parametrize(
    "text, expected",
    [
        ("20240301", dt.datetime(2024, 3, 1)),
        ("31-Jul-18", dt.datetime(2018, 7, 31)),
        ("1 December 2010 08:26", dt.datetime(2010, 12, 1, 8, 26)),
        ("Dec 1, 2010", dt.datetime(2010, 12, 1)),
        ("2010/12/01 8:26 PM", dt.datetime(2010, 12, 1, 20, 26)),
    ],
)
def test_other_readable_formats(text, expected):
    assert DateParser(tz=dt.UTC)(text).replace(tzinfo=None) == expected


def test_day_first_order_applies():
    parse = DateParser(tz=dt.UTC, order=DAY_FIRST)
    assert parse("03/04/2011 10:15").date() == dt.date(2011, 4, 3)
    parse = DateParser(tz=dt.UTC, order=MONTH_FIRST)
    assert parse("03/04/2011 10:15").date() == dt.date(2011, 3, 4)


def test_explicit_format():
    parse = DateParser(tz=dt.UTC, explicit_format="%d.%m.%Y")
    assert parse("03.04.2011").date() == dt.date(2011, 4, 3)
    with pytest.raises(ValueError, match="does not match"):
        parse("next tuesday")


def test_impossible_dates_say_why():
    with pytest.raises(ValueError, match="not a valid date"):
        DateParser(tz=dt.UTC)("2024-02-30")


def test_encoding_detection():
    assert detect_encoding("café".encode()) == "utf-8"
    assert detect_encoding(b"\xef\xbb\xbfa,b") == "utf-8-sig"
    assert detect_encoding("a,b\nCrème brûlée,Déco étoile €\n".encode("cp1252") * 20) == "cp1252"
    assert detect_encoding("a,b\n".encode("utf-16")) == "utf-16"


@pytest.mark.parametrize(
    "text, delimiter",
    [
        ("a,b,c\n1,2,3\n", ","),
        ("a;b;c\n1;2,5;3\n", ";"),
        ("a\tb\tc\n1\t2\t3\n", "\t"),
        ('a;b\n"x;y";2\n', ";"),
    ],
)
def test_delimiter_sniffing(text, delimiter):
    assert sniff_delimiter(text) == delimiter


def test_online_retail_headers_are_recognised():
    mapping, fmt = auto_map(
        "orders",
        [
            "InvoiceNo",
            "StockCode",
            "Description",
            "Quantity",
            "InvoiceDate",
            "UnitPrice",
            "CustomerID",
            "Country",
        ],
    )
    assert fmt == "generic"
    assert mapping == {
        "InvoiceNo": "order_id",
        "StockCode": "sku",
        "Description": "product_name",
        "Quantity": "quantity",
        "InvoiceDate": "ordered_at",
        "UnitPrice": "unit_price",
        "CustomerID": "customer_id",
        "Country": "country",  # fills the customer's profile
    }


def test_map_overrides_move_a_field():
    plan = build_plan("orders", ["Date", "Created at", "Total"], {"Created at": "ordered_at"})
    assert plan.mapping == {"Date": "Date", "Created at": "ordered_at", "Total": "amount"}
