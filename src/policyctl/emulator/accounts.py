"""Spot accounts: API credentials, free/locked balances per asset, fee rates.

Balances only change through the matching engine (``book.py``) or the test's explicit
``set_balance``; every debit that would go negative is refused with Binance's -2010
"Account has insufficient balance for requested action.".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from .errors import INSUFFICIENT_BALANCE, new_order_rejected
from .markets import Number, dec


@dataclass
class Balance:
    free: Decimal = Decimal(0)
    locked: Decimal = Decimal(0)

    @property
    def total(self) -> Decimal:
        return self.free + self.locked


@dataclass
class Account:
    """One API key: its HMAC secret, balances and commission rates."""

    api_key: str
    secret: str
    balances: dict[str, Balance] = field(default_factory=dict)
    maker_rate: Decimal = Decimal("0.001")
    taker_rate: Decimal = Decimal("0.001")
    uid: int = 1
    can_trade: bool = True

    def balance(self, asset: str) -> Balance:
        return self.balances.setdefault(asset, Balance())

    def set_balance(self, asset: str, free: Number, locked: Number = 0) -> None:
        self.balances[asset] = Balance(dec(free), dec(locked))

    def require_free(self, asset: str, amount: Decimal) -> None:
        if self.balance(asset).free < amount:
            raise new_order_rejected(INSUFFICIENT_BALANCE)

    def lock(self, asset: str, amount: Decimal) -> None:
        self.require_free(asset, amount)
        bal = self.balance(asset)
        bal.free -= amount
        bal.locked += amount

    def unlock(self, asset: str, amount: Decimal) -> None:
        bal = self.balance(asset)
        bal.locked -= amount
        bal.free += amount

    def spend_locked(self, asset: str, amount: Decimal) -> None:
        self.balance(asset).locked -= amount

    def debit(self, asset: str, amount: Decimal) -> None:
        self.require_free(asset, amount)
        self.balance(asset).free -= amount

    def credit(self, asset: str, amount: Decimal) -> None:
        self.balance(asset).free += amount

    def snapshot(self) -> dict[str, tuple[Decimal, Decimal]]:
        """``{asset: (free, locked)}`` for assertions."""
        return {a: (b.free, b.locked) for a, b in sorted(self.balances.items())}
