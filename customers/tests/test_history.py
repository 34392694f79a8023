"""The shared reader of an organisation's history (`customers.history.History`):
scope checked, other organisations and erased customers never read, returns
netted, nothing after `as_of` read. Runs on SQLite and, under `pgenv`, on
PostgreSQL as the row-level-security application role."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from django.db import connection
from django.utils import timezone

from accounts.tenancy import (
    ScopeMismatch,
    TenantNotSet,
    no_tenant_context,
    tenant_context,
    unscoped_context,
)
from customers.history import History
from customers.models import Customer, Product

from .factories import (
    CustomerFactory,
    EventFactory,
    FeedbackFactory,
    OrderFactory,
    OrderLineFactory,
    ProductFactory,
)

pytestmark = pytest.mark.django_db

AS_OF = dt.date(2024, 3, 31)
LAST_INSTANT = dt.datetime(2024, 3, 31, 23, 59, 59, tzinfo=dt.UTC)
NEXT_DAY = dt.datetime(2024, 4, 1, 0, 0, tzinfo=dt.UTC)


def _at(day: int, hour: int = 12) -> dt.datetime:
    return dt.datetime(2024, 3, day, hour, tzinfo=dt.UTC)


def _order(customer, when, lines, *, is_return=False, external_id=None):
    """An order with (product, quantity, amount) lines and the matching total."""
    order = OrderFactory(
        customer=customer,
        ordered_at=when,
        is_return=is_return,
        total=sum((Decimal(str(a)) for _, _, a in lines), Decimal(0)),
        channel="web",
        **({"external_id": external_id} if external_id else {}),
    )
    for product, quantity, amount in lines:
        OrderLineFactory(
            order=order,
            product=product,
            quantity=quantity,
            amount=Decimal(str(amount)),
            category=product.category if product else "",
        )
    return order


@pytest.fixture
def shop(org, other_org):
    """Ann buys, returns and buys again; Bob was erased with his orders still
    attached (an erasure half done); a guest buys; the other shop has its own."""
    with tenant_context(other_org):
        theirs = ProductFactory(sku="MUG", name="Their mug")
        rival = CustomerFactory(external_id="rival")
        _order(rival, _at(5), [(theirs, 50, 500)])
        EventFactory(customer=rival, occurred_at=_at(5))
        FeedbackFactory(customer=rival, created_at=_at(5), text="theirs")
    with tenant_context(org):
        mug = ProductFactory(sku="MUG", name="Mug", category="Kitchen")
        postage = ProductFactory(sku="POST", name="POSTAGE", category="", merchandise=False)
        ann = CustomerFactory(external_id="ann", gender="f", attributes={"tier": "gold"})
        bob = CustomerFactory(external_id="bob")
        _order(ann, _at(1), [(mug, 2, 20), (postage, 1, 5)])
        # a return order whose file gave positive quantities and amounts
        _order(ann, _at(2), [(mug, 1, 10)], is_return=True)
        # a line returned inside a purchase (negative quantity, positive amount)
        _order(ann, LAST_INSTANT, [(mug, 3, 30), (mug, -1, 10)])
        _order(ann, NEXT_DAY, [(mug, 7, 70)])  # after the cut-off
        _order(bob, _at(3), [(mug, 4, 40)])
        _order(None, _at(4), [(mug, 5, 50)])  # a guest
        EventFactory(customer=ann, type="email_open", occurred_at=LAST_INSTANT)
        EventFactory(customer=ann, type="email_open", occurred_at=NEXT_DAY)
        EventFactory(customer=ann, type="email_open", occurred_at=_at(1) - dt.timedelta(days=95))
        EventFactory(customer=bob, type="email_open", occurred_at=_at(3))
        FeedbackFactory(customer=ann, created_at=LAST_INSTANT, rating=5.0, text="Lovely")
        FeedbackFactory(customer=ann, created_at=NEXT_DAY, text="later")
        FeedbackFactory(customer=None, created_at=_at(2), rating=None, text="anonymous")
        FeedbackFactory(customer=bob, created_at=_at(3), text="erased")
        Customer.objects.filter(pk=bob.pk).update(erased_at=timezone.now())
    return {"org": org, "ann": ann.pk, "bob": bob.pk, "mug": mug.pk, "postage": postage.pk}


def test_another_organisations_scope_is_refused(shop, other_org):
    with tenant_context(other_org), pytest.raises(ScopeMismatch):
        History(shop["org"], AS_OF)
    with no_tenant_context(), pytest.raises(TenantNotSet):
        History(shop["org"].pk, AS_OF)


def test_purchases_leave_out_returns_guests_erased_and_later_orders(shop):
    with tenant_context(shop["org"]):
        purchases = History(shop["org"], AS_OF).purchases()
    assert purchases.customer_ids.tolist() == [shop["ann"], shop["ann"]]
    assert sorted(purchases.days.astype(str).tolist()) == ["2024-03-01", "2024-03-31"]
    assert sorted(purchases.amounts.tolist()) == [25.0, 40.0]
    assert purchases.returns_excluded == 1
    assert purchases.n_orders == 2


def test_order_lines_net_returns_and_stop_at_the_cut_off(shop):
    with tenant_context(shop["org"]):
        lines = History(shop["org"], AS_OF).order_lines()
    # Ann's lines only: Bob is erased, the guest has no customer, the other shop's
    # and the order of 1 April are not read
    assert set(lines["customer_id"]) == {shop["ann"]}
    assert lines["ordered_at"].max() == LAST_INSTANT
    assert sorted(zip(lines["quantity"], lines["amount"], strict=True)) == [
        (-1.0, -10.0),  # returned inside a purchase
        (-1.0, -10.0),  # the return order's line, given as positive in the file
        (1.0, 5.0),
        (2.0, 20.0),
        (3.0, 30.0),
    ]
    assert lines["amount"].sum() == 35.0
    assert set(lines["product_id"]) == {shop["mug"], shop["postage"]}
    assert set(lines["channel"].dropna()) == {"web"}
    assert lines["category"].isna().sum() == 1  # postage has no category


def test_product_lines_leave_out_postage_and_hidden_products(shop):
    with tenant_context(shop["org"]):
        history = History(shop["org"], AS_OF)
        assert set(history.product_lines()["product"]) == {"Mug"}
        Product.objects.filter(pk=shop["mug"]).update(hidden=True)
        assert len(History(shop["org"], AS_OF).product_lines()) == 0


def test_customers_events_and_feedback_leave_out_erased_and_later_rows(shop):
    with tenant_context(shop["org"]):
        history = History(shop["org"], AS_OF)
        customers = history.customers()
        events = history.events(days=91)
        feedback = history.feedback()
    assert customers["customer_id"].tolist() == [shop["ann"]]
    assert customers["gender"].tolist() == ["f"]
    assert customers["attr:tier"].tolist() == ["gold"]
    # the last instant of as_of is in; the next day and before the window are out
    assert events["customer_id"].tolist() == [shop["ann"]]
    assert events["occurred_at"].tolist() == [LAST_INSTANT]
    assert feedback["text"].tolist() == ["anonymous", "Lovely"]
    assert feedback["customer_id"].tolist() == [-1, shop["ann"]]
    assert np.isnan(feedback["rating"].iloc[0]) and feedback["rating"].iloc[1] == 5.0


def test_product_sales_count_guests_net_returns_and_skip_postage(shop):
    with tenant_context(shop["org"]):
        sales = History(shop["org"], AS_OF).product_sales(weeks=8)
    assert set(sales["sku"]) == {"MUG"}
    by_day = dict(zip(sales["date"].astype(str), sales["units"], strict=True))
    # 2 bought, 1 returned, 3 - 1 on the last day; Bob's 4 and the guest's 5 are
    # anonymous units (an erasure detaches orders; products still sold); not 1 April
    assert by_day == {
        "2024-03-01": 2.0,
        "2024-03-02": -1.0,
        "2024-03-03": 4.0,
        "2024-03-04": 5.0,
        "2024-03-31": 2.0,
    }


def test_the_platform_reads_an_organisation_through_its_own_login(shop):
    # unscoped code (the nightly fan-out) may read one organisation; on PostgreSQL
    # the raw SQL then goes through the platform connection, not the app role's
    with unscoped_context():
        purchases = History(shop["org"], AS_OF).purchases()
    assert purchases.n_orders == 2


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL's packed reads (History._packed)"
)
@pytest.mark.parametrize("sampled", [False, True])
def test_packed_reads_give_what_the_row_reads_give(shop, monkeypatch, sampled):
    """On PostgreSQL the orders and lines arrive packed in binary values, a range of
    ids at a time (here two ids, so many ranges); they must be the rows the plain
    reads return, text columns and missing values included."""
    from customers import history as history_module
    from customers.sampling import CustomerSample

    monkeypatch.setattr(history_module, "PACKED_CHUNK_IDS", 2)
    sample = CustomerSample.of_rate(0.5, seed=3) if sampled else None
    with tenant_context(shop["org"]):
        mug = Product.objects.get(sku="MUG")
        ann = Customer.objects.get(pk=shop["ann"])
        # a line of an order in another currency, in a category no other line has,
        # with a blank channel, and one without a product
        foreign = OrderFactory(customer=ann, ordered_at=_at(6), currency="XYZ", channel="")
        OrderLineFactory(order=foreign, product=None, quantity=2, amount=Decimal("7.5"))
        OrderLineFactory(order=foreign, product=mug, quantity=1, category="Odd one")
        history = History(shop["org"], AS_OF, sample=sample)
        orders, lines = history._packed_orders_and_lines(10, (8, 28))
        orders_rows, lines_rows = history._order_and_line_rows(10, (8, 28))
        where = "o.organization_id = %s AND o.customer_id IS NOT NULL AND o.ordered_at < %s "
        where += "AND o.status = 'paid'" + history._in_sample("o.customer_id")
        spend = "CASE WHEN o.currency = '' OR o.currency = %s THEN o.total ELSE 0 END"
        params = [history.organization_id, history._param(history.cutoff)]
        purchases_rows = history._purchase_rows(spend, where, params, (2, 10))
        purchases = history.purchases()

    def same(packed, rows, by):
        packed = packed.sort_values(by).reset_index(drop=True)
        rows = rows.sort_values(by).reset_index(drop=True)
        assert list(packed.columns) == list(rows.columns)
        for column in packed.columns:
            left, right = packed[column], rows[column]
            if isinstance(right.dtype, pd.CategoricalDtype):
                left, right = left.astype(object).tolist(), right.astype(object).tolist()
                left = [None if v != v else v for v in left]  # NaN → None
                right = [None if v != v else v for v in right]
                assert left == right, column
            else:
                np.testing.assert_allclose(
                    left.to_numpy(dtype=float), right.to_numpy(dtype=float), err_msg=column
                )

    assert sampled or len(orders) >= 5
    same(orders, orders_rows, ["order_id"])
    # a line without a product: -1 packed, missing in the rows (order_lines makes it -1)
    lines_rows["product_id"] = lines_rows["product_id"].fillna(-1)
    same(lines, lines_rows, ["order_id", "quantity", "amount"])
    packed = np.column_stack(
        [purchases.customer_ids, purchases.days.astype(np.int64), purchases.amounts]
    )
    rows = purchases_rows[~np.isin(purchases_rows[:, 0].astype(np.int64), [shop["bob"]])]
    rows = np.column_stack(
        [rows[:, 0], rows[:, 1].astype(np.int64) // 86400, np.nan_to_num(rows[:, 2])]
    )
    np.testing.assert_allclose(packed[np.lexsort(packed.T[::-1])], rows[np.lexsort(rows.T[::-1])])
