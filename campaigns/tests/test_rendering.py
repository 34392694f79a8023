"""Personalised messages (campaigns/rendering.py) and persona drafts (campaigns/drafts.py):
planted customers, products and templates, checked against what a reader would see."""

from __future__ import annotations

import datetime as dt
import re
import time
from types import SimpleNamespace

import pytest

from accounts.tenancy import tenant_context
from campaigns import rendering
from campaigns.drafts import draft_for_persona
from campaigns.rendering import compile_message, customer_contexts, sms_parts
from core.exceptions import ApplicationError

CTX = {
    "first_name": "Ana",
    "last_name": "Silva",
    "segment": "Loyal regulars",
    "persona": "Weekly tea lover",
    "favourites": "Green tea and Blue mug",
    "loyalty_tier": None,
    "offer_code": None,
    "shop_name": "Acme Gifts",
    "recommendations": [
        {
            "name": "Green tea",
            "url": "https://shop.example/tea",
            "image_url": "https://cdn.example/tea.jpg",
        },
        {"name": "Blue mug", "url": "https://shop.example/mug", "image_url": ""},
        {"name": "Teapot", "url": "https://shop.example/pot", "image_url": ""},
        {"name": "Cosy", "url": "https://shop.example/cosy", "image_url": ""},
    ],
}


def body_of(html: str) -> str:
    """The customer content of the layout (between the shop name and the footer)."""
    start = html.index('role="article"')
    return html[start : html.index("You are receiving this", start)]


# --- merge fields and escaping -----------------------------------------------------------
def test_merge_fields_fill_subject_html_and_text():
    msg = compile_message(
        channel="email",
        subject="{{ first_name }}, news from {{ shop_name }}",
        body="Hello {{ first_name }} {{ last_name }} ({{ segment }}, {{ persona }}).\n\nYou like {{ favourites }}.",
    )
    out = msg.render(CTX)
    assert out.subject == "Ana, news from Acme Gifts"
    assert "Hello Ana Silva (Loyal regulars, Weekly tea lover)." in out.html
    assert "You like Green tea and Blue mug." in out.html
    assert out.text.startswith("Hello Ana Silva (Loyal regulars, Weekly tea lover).\n\nYou like")
    # two paragraphs of the owner's text are two <p> elements
    assert len(re.findall(r"<p\b", body_of(out.html))) == 2


def test_missing_values_render_as_nothing_and_defaults_work():
    msg = compile_message(
        channel="email", subject="Hi {{ first_name or 'there' }}", body="Tier: [{{ loyalty_tier }}]"
    )
    out = msg.render({"shop_name": "Acme Gifts"})
    assert out.subject == "Hi there"
    assert "Tier: []" in out.text
    assert "None" not in out.html


def test_customer_values_are_escaped_in_html():
    msg = compile_message(
        channel="email", subject="Hi {{ first_name }}", body="Hi {{ first_name }}"
    )
    out = msg.render(dict(CTX, first_name='<img src=x onerror="alert(1)">Bo'))
    assert "<img src=x" not in out.html
    assert "&lt;img" in out.html
    # the subject is plain text, never HTML-escaped
    assert out.subject == 'Hi <img src=x onerror="alert(1)">Bo'


# --- the sandbox --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "source",
    [
        "{{ settings.SECRET_KEY }}",
        "{{ ''.__class__.__mro__ }}",
        "{{ customer.organization }}",
        "{{ first_name.__class__ }}",
        "{{ first_name['__class__'] }}",
        "{{ range(10) }}",
        "{{ lipsum() }}",
        "{{ request.user }}",
        "{% for c in customers %}{{ c.email }}{% endfor %}",
    ],
)
def test_templates_cannot_reach_outside_their_merge_fields(source, settings):
    settings.SECRET_KEY = "planted-secret-value-123"
    try:
        out = compile_message(channel="email", subject="s", body=source).render(CTX)
    except ApplicationError as exc:
        assert "body" in exc.message and "body" in exc.extra
        assert "line 1" in exc.message
    else:  # pragma: no cover - either refusal or nothing is acceptable
        assert "planted-secret" not in out.html and "class" not in body_of(out.html)


def test_attr_filter_is_refused():
    with pytest.raises(ApplicationError, match="attr"):
        compile_message(channel="email", subject="s", body="[{{ first_name|attr('__class__') }}]")


@pytest.mark.parametrize(
    "source,reason",
    [
        ("{% for c in first_name %}{{ c }}{% endfor %}", "loops"),
        ("{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}", "macros"),
        ("{% include 'base.html' %}", "include"),
        ("{% extends 'base.html' %}", "extend"),
        ("{% import 'x.html' as x %}", "import"),
        ("{{ first_name.ljust(1000000000) }}", "calling functions"),
        ("{{ first_name.upper }}", "no parts"),
        ("{{ first_name|center(1000000000) }}", "center"),
        ("{{ first_name|wordwrap(5) }}", "wordwrap"),
        ("{{ first_name|safe }}", "safe"),
        ("{{ 'x'|format(1) }}", "format"),
    ],
)
def test_costly_or_unsafe_constructs_are_refused_when_compiled(source, reason):
    with pytest.raises(ApplicationError) as err:
        compile_message(channel="email", subject="s", body="Hi\n" + source)
    assert reason in err.value.message and "line 2" in err.value.message


def test_allowed_constructs_still_work():
    body = (
        "{% set who = first_name|default('friend')|title %}Hi {{ who }}"
        "{% if segment == 'Loyal regulars' %}, thanks for staying{% endif %}! "
        "{{ first_name[0] }}. {{ (2 * 3) }} {{ last_name|upper|truncate(20) }}"
    )
    out = compile_message(channel="email", subject="s", body=body).render(CTX)
    assert out.text.startswith("Hi Ana, thanks for staying! A. 6 SILVA")


def test_printf_padding_is_refused_when_rendered():
    msg = compile_message(channel="email", subject="s", body="{{ '%999999999s' % first_name }}")
    with pytest.raises(ApplicationError):
        msg.render(CTX)


def test_huge_strings_are_refused_cleanly():
    msg = compile_message(channel="email", subject="s", body="{{ 'x' * 100000000 }}")
    with pytest.raises(ApplicationError) as err:
        msg.render(CTX)
    assert "body" in err.value.message


def test_syntax_error_names_field_and_line():
    with pytest.raises(ApplicationError) as err:
        compile_message(channel="email", subject="Fine", body="Hello\n\nThen {{ first_name ")
    assert "body" in err.value.extra
    assert "line 3" in err.value.message
    with pytest.raises(ApplicationError) as err:
        compile_message(channel="email", subject="Hi {% if %}", body="ok")
    assert "subject" in err.value.extra and "line 1" in err.value.message


def test_unknown_merge_field_is_named_with_its_line():
    with pytest.raises(ApplicationError) as err:
        compile_message(channel="email", subject="s", body="Hi\n{{ frist_name }}")
    assert "frist_name" in err.value.message and "line 2" in err.value.message


# --- owner HTML, links, footer --------------------------------------------------------------
def test_owner_html_is_sanitised():
    msg = compile_message(
        channel="email",
        subject="s",
        body='<b>Bold</b> <script>alert(1)</script><a href="javascript:alert(2)">x</a>'
        '<p onclick="evil()">para</p><iframe src="https://evil.test"></iframe><img src="https://evil.test/p.gif">',
    )
    html = body_of(msg.render(CTX).html)
    assert "<b>Bold</b>" in html
    for bad in ("<script", "alert(1)", "javascript:", "onclick", "<iframe", "evil.test"):
        assert bad not in html


def test_every_web_link_goes_through_link_and_text_shows_them():
    seen = []

    def link(url):
        seen.append(url)
        return f"https://t.test/c/{len(seen)}"

    msg = compile_message(
        channel="email",
        subject="s",
        body='See <a href="https://shop.example/new?a=1&amp;b=2">our new things</a>.\n\n'
        'Or visit https://shop.example/sale today. Write to <a href="mailto:hi@shop.example">us</a>.',
    )
    out = msg.render(CTX, link=link)
    assert seen == ["https://shop.example/new?a=1&b=2", "https://shop.example/sale"]
    assert out.links == seen
    html = body_of(out.html)
    assert 'href="https://t.test/c/1"' in html and 'href="https://t.test/c/2"' in html
    assert "shop.example/new" not in html  # only the tracked address is linked
    assert 'href="mailto:hi@shop.example"' in html
    assert "our new things (https://t.test/c/1)" in out.text
    assert "Or visit https://t.test/c/2 today." in out.text


def test_footer_unsubscribe_preferences_and_open_pixel():
    out = compile_message(channel="email", subject="s", body="Hi").render(
        CTX,
        unsubscribe_url="https://app.test/m/u/TOKEN1/",
        preferences_url="https://app.test/m/p/TOKEN2/",
        open_pixel_url="https://app.test/m/o/TOKEN3/",
    )
    assert 'href="https://app.test/m/u/TOKEN1/"' in out.html
    assert 'href="https://app.test/m/p/TOKEN2/"' in out.html
    assert re.search(r'<img src="https://app.test/m/o/TOKEN3/" width="1" height="1"', out.html)
    assert "Unsubscribe: https://app.test/m/u/TOKEN1/" in out.text
    assert "Email preferences: https://app.test/m/p/TOKEN2/" in out.text
    # the footer links are not tracked clicks
    assert out.links == []


def test_layout_is_responsive_and_inlined():
    html = compile_message(channel="email", subject="Subj", body="Hi").render(CTX).html
    assert html.lower().startswith("<!doctype html>")
    assert 'name="viewport"' in html
    assert "@media" in html  # the responsive column rule stays in <style>
    assert "<title>Subj</title>" in html
    assert re.search(r'<p style="[^"]*margin', html)  # content CSS inlined


def test_layout_is_compiled_once_not_per_customer(monkeypatch):
    calls = []
    real = rendering.mjml.mjml2html

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(rendering.mjml, "mjml2html", counting)
    rendering._layout_parts.cache_clear()
    try:
        msg = compile_message(
            channel="email", subject="Hi {{ first_name }}", body="Hi {{ first_name }}"
        )
        names = [f"Name{i}" for i in range(20)]
        outs = [msg.render(dict(CTX, first_name=n)) for n in names]
        compile_message(channel="email", subject="x", body="y").render(CTX)
    finally:
        rendering._layout_parts.cache_clear()
    assert len(calls) == 1
    assert [o.subject for o in outs] == [f"Hi {n}" for n in names]


# --- blocks -------------------------------------------------------------------------------
def test_recommendations_block_shows_products_with_tracked_links():
    seen = []

    def link(url):
        seen.append(url)
        return "https://t.test/r/" + url.rsplit("/", 1)[1]

    msg = compile_message(
        channel="email", subject="s", body="Picked for you:\n\n{% recommendations 2 %}\n\nBye"
    )
    out = msg.render(CTX, link=link)
    html = body_of(out.html)
    assert "Green tea" in html and "Blue mug" in html
    assert "Teapot" not in html  # only 2 asked
    assert '<img src="https://cdn.example/tea.jpg" alt="Green tea"' in html
    assert 'href="https://t.test/r/tea"' in html and 'href="https://t.test/r/mug"' in html
    assert seen == ["https://shop.example/tea", "https://shop.example/mug"]
    assert "- Green tea (https://t.test/r/tea)\n- Blue mug (https://t.test/r/mug)" in out.text
    assert out.text.index("Picked for you") < out.text.index("Green tea") < out.text.index("Bye")


def test_recommendations_block_default_and_bad_argument():
    out = compile_message(channel="email", subject="s", body="{% recommendations %}").render(CTX)
    assert "Teapot" in out.text and "Cosy" not in out.text  # three by default
    with pytest.raises(ApplicationError) as err:
        compile_message(channel="email", subject="s", body="a\n{% recommendations first_name %}")
    assert "line 2" in err.value.message


def test_offer_block_shows_the_code_or_nothing():
    msg = compile_message(channel="email", subject="s", body="Hello\n{% offer %}\nBye")
    with_code = msg.render(dict(CTX, offer_code="SAVE-7QX"))
    assert "SAVE-7QX" in with_code.html and "Your code: SAVE-7QX" in with_code.text
    without = msg.render(CTX)
    assert "Your code" not in without.html and "Your code" not in without.text
    assert "Hello" in without.text and "Bye" in without.text


# --- SMS ---------------------------------------------------------------------------------
def test_sms_is_text_with_an_opt_out_and_tracked_links():
    msg = compile_message(
        channel="sms",
        subject="ignored",
        body="Hi {{ first_name }}! <b>New</b> at https://shop.example/sale {% offer %}",
    )
    out = msg.render(dict(CTX, offer_code="SMS10"), link=lambda u: "https://t.test/s1")
    assert out.html == "" and out.subject == ""
    assert out.text == "Hi Ana! New at https://t.test/s1 Your code: SMS10\nReply STOP to opt out"
    assert out.links == ["https://shop.example/sale"]
    with_pref = msg.render(CTX, preferences_url="https://app.test/m/p/X/")
    assert with_pref.text.endswith("\nStop: https://app.test/m/p/X/")


def test_sms_values_are_not_html_escaped():
    out = compile_message(channel="sms", subject="", body="Hi {{ first_name }}").render(
        dict(CTX, first_name="O'Brien & Co")
    )
    assert out.text.startswith("Hi O'Brien & Co\n")


@pytest.mark.parametrize(
    "text,expected",
    [
        ("", {"encoding": "GSM-7", "characters": 0, "parts": 0}),
        ("a" * 160, {"encoding": "GSM-7", "characters": 160, "parts": 1}),
        ("a" * 161, {"encoding": "GSM-7", "characters": 161, "parts": 2}),
        ("a" * 306, {"encoding": "GSM-7", "characters": 306, "parts": 2}),
        ("a" * 307, {"encoding": "GSM-7", "characters": 307, "parts": 3}),
        ("€" * 80, {"encoding": "GSM-7", "characters": 160, "parts": 1}),
        ("€" * 81, {"encoding": "GSM-7", "characters": 162, "parts": 2}),
        ("Café £5 {x}", {"encoding": "GSM-7", "characters": 13, "parts": 1}),
        ("ł" * 70, {"encoding": "UCS-2", "characters": 70, "parts": 1}),
        ("ł" * 71, {"encoding": "UCS-2", "characters": 71, "parts": 2}),
        ("ł" * 134, {"encoding": "UCS-2", "characters": 134, "parts": 2}),
        ("ł" * 135, {"encoding": "UCS-2", "characters": 135, "parts": 3}),
        ("Hi 😀", {"encoding": "UCS-2", "characters": 5, "parts": 1}),
    ],
)
def test_sms_parts(text, expected):
    assert sms_parts(text) == expected


# --- merge fields for a batch of customers ---------------------------------------------------
def _planted(org, n=4):
    from customers.models import Customer, Product
    from recommendations.models import CustomerRecommendation, RecommendationRun
    from segmentation.models import (
        Persona,
        Segment,
        SegmentationRun,
        SegmentKind,
        SegmentMembership,
    )

    with tenant_context(org):
        customers = [
            Customer.objects.create(
                organization=org, external_id=f"c{i}", first_name=f"First{i}", last_name=f"Last{i}"
            )
            for i in range(n)
        ]
        run = SegmentationRun.objects.create(
            organization=org, as_of=dt.date(2024, 6, 30), is_live=True
        )
        old = SegmentationRun.objects.create(
            organization=org, as_of=dt.date(2024, 5, 31), is_live=False
        )
        seg = Segment.objects.create(
            organization=org, kind=SegmentKind.CLUSTER, name="Tea regulars", key="cluster-1"
        )
        gone = Segment.objects.create(
            organization=org, kind=SegmentKind.CLUSTER, name="Old group", key="cluster-2"
        )
        Persona.objects.create(organization=org, segment=seg, name="Weekly tea lover")
        SegmentMembership.objects.create(
            organization=org, run=run, segment=seg, customer=customers[0]
        )
        SegmentMembership.objects.create(
            organization=org, run=old, segment=gone, customer=customers[1]
        )
        SegmentMembership.objects.create(
            organization=org, run=run, segment=seg, customer=customers[3]
        )
        p = {
            sku: Product.objects.create(organization=org, sku=sku, name=name, url=f"https://shop.example/{sku}",
                                        image_url=f"https://cdn.example/{sku}.jpg", **extra)
            for sku, name, extra in [
                ("tea", "Green tea", {}),
                ("mug", "Blue mug", {"in_stock": True}),
                ("hid", "Hidden thing", {"hidden": True}),
                ("oos", "Sold out thing", {"in_stock": False}),
                ("pot", "Teapot", {}),
                ("fee", "Postage", {"merchandise": False}),
            ]
        }  # fmt: skip
        recs = RecommendationRun.objects.create(
            organization=org, cutoff=dt.date(2024, 6, 30), served="item_knn", is_live=True,
            popular={"overall": [p["pot"].pk, p["hid"].pk, p["tea"].pk], "segments": {str(seg.pk): [p["mug"].pk]}},
        )  # fmt: skip
        for rank, sku in enumerate(["hid", "tea", "oos", "fee", "mug", "pot"], start=1):
            CustomerRecommendation.objects.create(
                organization=org, run=recs, customer=customers[0], product=p[sku], rank=rank, score=1 / rank, reason="r"
            )  # fmt: skip
    return customers


@pytest.mark.django_db
def test_customer_contexts_planted_values(org, other_org):
    customers = _planted(org)
    with tenant_context(other_org):
        from customers.models import Customer

        stranger = Customer.objects.create(
            organization=other_org, external_id="x", first_name="Eve"
        )
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as one:
        customer_contexts(customers[:2], organization=org)
    with CaptureQueriesContext(connection) as many:
        ctx = customer_contexts(customers + [stranger], organization=org)
    # a few queries per batch, not per customer (PostgreSQL adds the tenant settings)
    assert len(many) == len(one) <= 16
    assert set(ctx) == {c.pk for c in customers}  # never another organisation's customer
    first = ctx[customers[0].pk]
    assert first["first_name"] == "First0" and first["last_name"] == "Last0"
    assert first["segment"] == "Tea regulars" and first["persona"] == "Weekly tea lover"
    assert first["shop_name"] == "Acme Gifts"
    # hidden, out of stock and non-merchandise products are skipped, order kept
    assert [r["name"] for r in first["recommendations"]] == ["Green tea", "Blue mug", "Teapot"]
    assert first["recommendations"][0] == {
        "name": "Green tea", "url": "https://shop.example/tea", "image_url": "https://cdn.example/tea.jpg"
    }  # fmt: skip
    assert first["favourites"] == "Green tea, Blue mug and Teapot"
    assert first["loyalty_tier"] is None and first["offer_code"] is None
    # only the live run's segment counts
    second = ctx[customers[1].pk]
    assert second["segment"] is None and second["persona"] is None
    # nothing bought: the popular products (overall), hidden ones skipped
    assert [r["name"] for r in second["recommendations"]] == ["Teapot", "Green tea"]
    # nothing bought, in a segment: that segment's popular products
    assert [r["name"] for r in ctx[customers[3].pk]["recommendations"]] == ["Blue mug"]
    assert ctx[customers[3].pk]["favourites"] == "Blue mug"
    # ids work as well as instances
    assert customer_contexts([customers[0].pk], organization=org)[customers[0].pk] == first


@pytest.mark.django_db
def test_customer_contexts_without_any_run(org):
    from customers.models import Customer

    with tenant_context(org):
        c = Customer.objects.create(organization=org, external_id="solo", first_name="Solo")
    ctx = customer_contexts([c], organization=org)[c.pk]
    assert ctx["segment"] is None and ctx["recommendations"] == [] and ctx["favourites"] is None


@pytest.mark.django_db
def test_customer_contexts_for_ten_thousand_customers_is_quick(org):
    from customers.models import Customer, Product
    from recommendations.models import CustomerRecommendation, RecommendationRun
    from segmentation.models import Segment, SegmentationRun, SegmentKind, SegmentMembership

    n = 10_000
    with tenant_context(org):
        Customer.objects.bulk_create(
            [Customer(organization=org, external_id=f"b{i}", first_name=f"F{i}") for i in range(n)]
        )
        customers = list(Customer.objects.order_by("pk"))
        products = Product.objects.bulk_create(
            [Product(organization=org, sku=f"s{i}", name=f"Product {i}") for i in range(50)]
        )
        run = SegmentationRun.objects.create(
            organization=org, as_of=dt.date(2024, 6, 30), is_live=True
        )
        segs = [
            Segment.objects.create(organization=org, kind=SegmentKind.CLUSTER, name=f"S{k}", key=f"cluster-{k}")
            for k in range(4)
        ]  # fmt: skip
        SegmentMembership.objects.bulk_create(
            [SegmentMembership(organization=org, run=run, segment=segs[i % 4], customer=c)
             for i, c in enumerate(customers)]
        )  # fmt: skip
        recs = RecommendationRun.objects.create(
            organization=org, cutoff=dt.date(2024, 6, 30), served="item_knn", is_live=True
        )
        CustomerRecommendation.objects.bulk_create(
            [CustomerRecommendation(organization=org, run=recs, customer=c, product=products[(i + r) % 50],
                                    rank=r + 1, score=1.0, reason="r")
             for i, c in enumerate(customers) for r in range(3)]
        )  # fmt: skip
    start = time.perf_counter()
    ctx = customer_contexts(customers, organization=org)
    seconds = time.perf_counter() - start
    print(f"customer_contexts: {n} customers in {seconds:.2f} s")
    assert len(ctx) == n
    last = customers[-1]
    i = n - 1
    assert ctx[last.pk]["segment"] == f"S{i % 4}"
    assert [r["name"] for r in ctx[last.pk]["recommendations"]] == [
        f"Product {(i + r) % 50}" for r in range(3)
    ]
    assert seconds < 10, f"{seconds:.1f} s for {n} customers"

    # rendering them all, too
    msg = compile_message(
        channel="email",
        subject="Hi {{ first_name }}",
        body="Hi {{ first_name }}\n\n{% recommendations 3 %}",
    )
    start = time.perf_counter()
    for c in customers[:2000]:
        msg.render(ctx[c.pk], link=lambda u: u, unsubscribe_url="https://app.test/u/")
    seconds = time.perf_counter() - start
    print(f"render: 2000 customers in {seconds:.2f} s")
    assert seconds < 10


# --- drafts ------------------------------------------------------------------------------------
def _persona(**fields):
    base = {
        "name": "", "summary": "", "traits": [], "motivations": [], "preferred_channel": "",
        "preferred_time": "", "favourite_categories": [], "favourite_products": [],
        "value_level": "", "risk_level": "",
    }  # fmt: skip
    base.update(fields)
    return SimpleNamespace(**base)


LAPSING = _persona(
    name="Lapsing bargain hunters",
    motivations=[
        "Price: small baskets suggest they look for deals",
        "A reason to come back: a relevant offer",
    ],
    favourite_categories=["Candles"],
    preferred_time="weekday evenings",
    value_level="medium",
    risk_level="high",
)
LOYAL = _persona(
    name="Loyal tea lovers",
    motivations=["Habit and convenience: they reorder on a steady rhythm"],
    favourite_categories=["Tea", "Teaware"],
    preferred_time="Saturday mornings",
    value_level="high",
    risk_level="low",
)


@pytest.mark.parametrize("channel", ["email", "sms"])
def test_drafts_differ_by_persona_and_compile(channel):
    subject_a, body_a = draft_for_persona(
        LAPSING, channel=channel, goal="Win back lapsed customers"
    )
    subject_b, body_b = draft_for_persona(LOYAL, channel=channel)
    assert body_a != body_b
    for subject, body in ((subject_a, body_a), (subject_b, body_b)):
        # a draft is marked as one and is a valid template
        assert body.startswith("{# Draft written by Segmenta")
        out = compile_message(channel=channel, subject=subject, body=body).render(
            dict(CTX, offer_code="BACK15")
        )
        assert "Draft written" not in out.text  # the note is not sent
    if channel == "email":
        assert subject_a != subject_b
        assert "candles" in (subject_a + body_a).lower() and "tea" in (subject_b + body_b).lower()
        assert "missed you" in subject_a.lower() and "early access" in subject_b.lower()
        assert "{% offer %}" in body_a and "{% offer %}" not in body_b
        assert "(goal: Win back lapsed customers)" in body_a.splitlines()[0]  # in the note
        # motivations speak to the customer, not about the group
        assert "We know you care about good value and a good reason to visit again." in body_a
        assert "they look for deals" not in body_a
        assert 'persona "Loyal tea lovers"' in body_b and "Saturday mornings" in body_b


def test_draft_persona_text_cannot_inject_template_code():
    evil = _persona(name="{{ settings.SECRET_KEY }}", favourite_categories=["{% for x in y %}"])
    subject, body = draft_for_persona(evil, channel="email")
    compile_message(channel="email", subject=subject, body=body)  # no error: nothing injected


def test_text_part_has_tidy_blank_lines():
    body = "Hello {{ first_name }},\n\nSee https://shop.example/a\n\n{% recommendations 1 %}\n\n{% offer %}\n\nBye"
    out = compile_message(channel="email", subject="s", body=body).render(
        dict(CTX, offer_code="S10")
    )
    assert out.text.split("\n\n--\n")[0] == (
        "Hello Ana,\n\nSee https://shop.example/a\n\n- Green tea (https://shop.example/tea)"
        "\n\nYour code: S10\n\nBye"
    )
