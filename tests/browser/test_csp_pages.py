"""Under the Content-Security-Policy (no inline script, no eval) every chart still
draws, Swagger UI and the admin still start, and injected inline script does not run.
The `new_context` fixture fails the test on any CSP violation or script error."""

from __future__ import annotations

import datetime as dt

import pytest
from playwright.sync_api import expect

from accounts.tenancy import tenant_context
from customers.models import OrderLine
from predictions.models import ProductForecast
from predictions.services import prediction_run
from predictions.tests.factories import simulate_world, write_world
from segmentation.models import Segment
from segmentation.services.segments import segmentation_run

pytestmark = pytest.mark.django_db(transaction=True)


def test_charts_swagger_and_admin_work_under_the_policy(site, page, owner, org, browser_problems):
    write_world(org, simulate_world(n_customers=300, as_of=dt.date(2024, 6, 30), history_days=400))
    with tenant_context(org):
        segmentation_run(organization=org)
        prediction_run(organization=org)
        segment = Segment.objects.filter(is_active=True).order_by("pk").first()
        forecast = ProductForecast.objects.order_by("-total_4w").first()
        product_id = OrderLine.objects.exclude(product=None).values_list("product", flat=True)[0]
    owner.is_staff = owner.is_superuser = True
    owner.save()
    page.set_default_timeout(15_000)

    page.goto(f"{site}/accounts/login/")
    page.get_by_label("Email").fill(owner.email)
    page.get_by_label("Password").fill("correct-horse-battery")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Acme Gifts")

    charts = {
        "/": ["#revenue-chart"],
        f"/customers/products/{product_id}/": ["#sales-chart"],
        "/segments/": ["#segment-map", "#segment-profiles"],
        f"/segments/{segment.pk}/": ["#profile-chart"],
        "/segments/predictions/": ["#chart-weeks", "#chart-value"],
        f"/segments/predictions/products/{forecast.pk}/": ["#chart-demand"],
    }
    for path, selectors in charts.items():
        page.goto(site + path)
        for selector in selectors:
            # plotly draws its SVG only when its script ran
            expect(page.locator(f"{selector} .main-svg").first).to_be_attached()

    # Swagger UI starts from its setup file and lists the API.
    page.goto(f"{site}/api/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Segmenta")
    expect(page.locator(".opblock-tag").first).to_be_visible()

    # The admin's own scripts run (the sidebar filter is added by nav_sidebar.js).
    page.goto(f"{site}/admin/")
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()
    page.goto(f"{site}/admin/customers/product/")
    expect(page.locator("#nav-filter")).to_be_attached()

    # And the policy bites: script injected into a page does not run.
    assert browser_problems == []
    page.goto(f"{site}/")
    page.evaluate(
        """() => { const s = document.createElement("script");
                   s.textContent = "window.__injected = true"; document.body.append(s); }"""
    )
    assert page.evaluate("() => window.__injected === undefined")
    page.wait_for_timeout(200)
    assert any("Content Security Policy" in p for p in browser_problems), browser_problems
    browser_problems.clear()
