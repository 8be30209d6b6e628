"""The payment service's servicer on an in-memory database, and the shared money helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from meshkit.database import Database
from meshkit.errors import FailedPrecondition, InvalidArgument, NotFound, Violations
from meshkit.settings import from_env
from services.payment.app import PaymentSettings
from services.payment.servicer import PaymentServicer
from services.payment.store import SCHEMA, PaymentStore
from services.shop_common.money import format_money, from_nanos, to_nanos, validate_money
from shop.common.v1.money_pb2 import Money
from shop.payment.v1 import payment_pb2 as pb


@pytest.fixture
async def payment() -> AsyncIterator[PaymentServicer]:
    db = await Database.open(":memory:", SCHEMA)
    yield PaymentServicer(PaymentStore(db))
    await db.close()


def eur(units: int, nanos: int = 0, currency: str = "EUR") -> Money:
    return Money(currency_code=currency, units=units, nanos=nanos)


def capture(
    order_id: str = "o1", amount: Money | None = None, token: str = "tok_visa"
) -> pb.CapturePaymentRequest:
    return pb.CapturePaymentRequest(
        order_id=order_id, amount=amount or eur(12, 500_000_000), payment_token=token
    )


def fields(err: pytest.ExceptionInfo[InvalidArgument]) -> list[str]:
    return [v.field for v in err.value.violations]


async def test_capture_and_get(payment: PaymentServicer) -> None:
    paid = (await payment.CapturePayment(capture(), None)).payment
    assert paid.status == pb.PAYMENT_STATUS_CAPTURED
    assert paid.payment_id.startswith("pay_")
    assert (paid.order_id, paid.amount, paid.decline_reason) == ("o1", eur(12, 500_000_000), "")
    assert paid.create_time.seconds > 0
    got = (await payment.GetPayment(pb.GetPaymentRequest(payment_id=paid.payment_id), None)).payment
    assert got == paid
    with pytest.raises(NotFound):
        await payment.GetPayment(pb.GetPaymentRequest(payment_id="pay_unknown"), None)
    with pytest.raises(InvalidArgument) as err:
        await payment.GetPayment(pb.GetPaymentRequest(), None)
    assert fields(err) == ["payment_id"]


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (pb.CapturePaymentRequest(), ["order_id", "amount", "payment_token"]),
        (capture(amount=eur(10, currency="CHF")), ["amount.currency_code"]),
        (capture(amount=eur(10, currency="eur")), ["amount.currency_code"]),
        (capture(amount=eur(0)), ["amount"]),
        (capture(amount=eur(-5)), ["amount"]),
        (capture(amount=eur(1, -5)), ["amount.nanos"]),
        (capture(amount=eur(1, 1_000_000_000)), ["amount.nanos"]),
        (capture(token=""), ["payment_token"]),
    ],
)
async def test_capture_validation_names_fields(
    payment: PaymentServicer, request_: pb.CapturePaymentRequest, expected: list[str]
) -> None:
    with pytest.raises(InvalidArgument) as err:
        await payment.CapturePayment(request_, None)
    assert fields(err) == expected


@pytest.mark.parametrize(
    ("token", "amount", "reason"),
    [
        ("tok_decline", eur(10), "card_declined"),
        ("tok_insufficient", eur(10), "insufficient_funds"),
        ("tok_visa", eur(10_000, 1), "amount_over_limit"),
    ],
)
async def test_declines_are_answers(
    payment: PaymentServicer, token: str, amount: Money, reason: str
) -> None:
    declined = (await payment.CapturePayment(capture(amount=amount, token=token), None)).payment
    assert declined.status == pb.PAYMENT_STATUS_DECLINED
    assert declined.decline_reason == reason


async def test_limit_is_inclusive_and_configurable(payment: PaymentServicer) -> None:
    at_limit = (await payment.CapturePayment(capture(amount=eur(10_000)), None)).payment
    assert at_limit.status == pb.PAYMENT_STATUS_CAPTURED
    db = await Database.open(":memory:", SCHEMA)
    try:
        strict = PaymentServicer(PaymentStore(db), max_amount_units=100)
        over = (await strict.CapturePayment(capture(amount=eur(100, 10)), None)).payment
        assert over.decline_reason == "amount_over_limit"
    finally:
        await db.close()


async def test_capture_is_idempotent_per_order(payment: PaymentServicer) -> None:
    first = (await payment.CapturePayment(capture(), None)).payment
    again = (await payment.CapturePayment(capture(), None)).payment
    assert again == first
    with pytest.raises(FailedPrecondition, match=r"already has a payment of 12\.50 EUR"):
        await payment.CapturePayment(capture(amount=eur(13)), None)
    # A declined order stays declined: the retry gets the first answer.
    declined = (await payment.CapturePayment(capture("o2", token="tok_decline"), None)).payment
    retried = (await payment.CapturePayment(capture("o2"), None)).payment
    assert retried == declined


async def test_refund(payment: PaymentServicer) -> None:
    paid = (await payment.CapturePayment(capture(), None)).payment
    refund = pb.RefundPaymentRequest(order_id="o1", reason="order cancelled")
    refunded = (await payment.RefundPayment(refund, None)).payment
    assert (refunded.payment_id, refunded.status) == (paid.payment_id, pb.PAYMENT_STATUS_REFUNDED)
    again = (await payment.RefundPayment(refund, None)).payment
    assert again == refunded
    # Capturing a refunded order again does not charge it twice.
    assert (await payment.CapturePayment(capture(), None)).payment == refunded

    declined = (await payment.CapturePayment(capture("o2", token="tok_decline"), None)).payment
    unchanged = (await payment.RefundPayment(pb.RefundPaymentRequest(order_id="o2"), None)).payment
    assert unchanged == declined
    with pytest.raises(NotFound):
        await payment.RefundPayment(pb.RefundPaymentRequest(order_id="unknown"), None)
    with pytest.raises(InvalidArgument) as err:
        await payment.RefundPayment(pb.RefundPaymentRequest(), None)
    assert fields(err) == ["order_id"]


def test_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHOP_PAYMENT_MAX_AMOUNT_UNITS", raising=False)
    assert from_env(PaymentSettings).max_amount_units == 10_000
    monkeypatch.setenv("SHOP_PAYMENT_MAX_AMOUNT_UNITS", "250")
    assert from_env(PaymentSettings).max_amount_units == 250
    monkeypatch.setenv("SHOP_PAYMENT_MAX_AMOUNT_UNITS", "lots")
    with pytest.raises(ValueError, match="SHOP_PAYMENT_MAX_AMOUNT_UNITS"):
        from_env(PaymentSettings)


@pytest.mark.parametrize(
    ("money", "nanos", "text"),
    [
        (eur(12, 500_000_000), 12_500_000_000, "12.50 EUR"),
        (eur(0, 1), 1, "0.000000001 EUR"),
        (eur(-3, -250_000_000), -3_250_000_000, "-3.25 EUR"),
        (eur(7), 7_000_000_000, "7.00 EUR"),
    ],
)
def test_money_round_trips_through_nanos(money: Money, nanos: int, text: str) -> None:
    assert to_nanos(money) == nanos
    assert from_nanos(nanos, "EUR") == money
    assert format_money(money) == text


def test_validate_money() -> None:
    v = Violations()
    assert validate_money(v, "price", eur(1, 5))
    assert not validate_money(v, "a", eur(1, -5))
    assert not validate_money(v, "b", eur(-1))
    assert not validate_money(v, "c", Money(currency_code="EU", units=1))
    assert [x.field for x in v.items] == ["a.nanos", "b", "c.currency_code"]


async def test_intent_is_a_step_pending_until_captured_or_cancelled() -> None:
    db = await Database.open(":memory:", SCHEMA)
    try:
        store = PaymentStore(db)
        assert await store.remember_intent("o1", eur(12, 500_000_000), "tok_visa")
        assert not await store.remember_intent("o1", eur(99), "tok_other")  # the first is kept
        intent = await store.intent("o1")
        assert intent is not None and intent.pending
        assert (intent.amount, intent.payment_token) == (eur(12, 500_000_000), "tok_visa")
        await store.finish_intent("o1")
        await store.cancel_intent("o1")  # a captured intent stays captured
        done = await store.intent("o1")
        assert done is not None and not done.pending and done.status == "DONE"
        assert done.payment_token == ""  # the token is not kept past the capture
        # A cancellation ahead of its order leaves a tombstone: the intent is never taken.
        await store.cancel_intent("o2")
        assert not await store.remember_intent("o2", eur(1), "tok_visa")
        tombstone = await store.intent("o2")
        assert tombstone is not None and tombstone.status == "CANCELLED"
        assert await store.intent("o3") is None
    finally:
        await db.close()
