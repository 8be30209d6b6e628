"""Whether a capture goes through: a stand-in for a card processor, kept pure and testable."""

from __future__ import annotations

from dataclasses import dataclass

from services.shop_common.money import NANOS_PER_UNIT

ACCEPTED_CURRENCIES = frozenset({"EUR", "USD", "GBP"})
# Test card tokens that always decline, with the reason a processor would give.
DECLINING_TOKENS = {"tok_decline": "card_declined", "tok_insufficient": "insufficient_funds"}
DEFAULT_MAX_AMOUNT_UNITS = 10_000


@dataclass(frozen=True)
class Decision:
    captured: bool
    decline_reason: str = ""


def decide(payment_token: str, amount_nanos: int, max_amount_units: int) -> Decision:
    """Declines the test tokens and amounts above the limit; captures everything else."""
    if payment_token in DECLINING_TOKENS:
        return Decision(captured=False, decline_reason=DECLINING_TOKENS[payment_token])
    if amount_nanos > max_amount_units * NANOS_PER_UNIT:
        return Decision(captured=False, decline_reason="amount_over_limit")
    return Decision(captured=True)
