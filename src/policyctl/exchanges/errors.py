"""The one place that turns a ccxt exception into the adapter taxonomy.

:func:`classify` maps an exception raised by a ccxt call to a
:class:`~policyctl.exchanges.adapter.AdapterError` subclass. ccxt's classes form a tree, so
the order of the checks matters (``DDoSProtection`` and ``InvalidNonce`` are
``NetworkError`` subclasses, ``OrderNotFound`` is an ``InvalidOrder``, everything network-ish
is an ``OperationFailed``)::

    ccxt exception                              reads / cancels          placing an order
    ------------------------------------------  -----------------------  ------------------------
    DDoSProtection, HTTP 418 ("IP banned")      NeedsHuman               NeedsHuman
    DDoSProtection HTTP 429, RateLimitExceeded  Transient(retry_after)   Transient(retry_after)
    DDoSProtection, anything else (-2015 ban)   NeedsHuman               NeedsHuman
    InvalidNonce (-1021 timestamp)              Transient                Transient (refused unsent)
    RequestTimeout (timeout, 504)               Transient                Ambiguous
    ExchangeNotAvailable (5xx HTML), OnMaint.   Transient                Ambiguous
    NetworkError (dropped connection)           Transient                Ambiguous
    OperationFailed (-1001, -1008), BadResponse Transient                Ambiguous
    AuthenticationError, PermissionDenied,
      AccountSuspended, AccountNotEnabled       NeedsHuman               NeedsHuman
    InsufficientFunds                           Rejected(insufficient_funds)
    MarketClosed (HALT / BREAK)                 Rejected(market_closed)
    DuplicateOrderId, "Duplicate order sent."   Rejected(duplicate)
    OrderNotFound                               Rejected(not_found)      (callers treat it as "gone")
    OrderImmediatelyFillable (post-only)        Rejected(would_take)
    InvalidOrder/BadRequest "...NOTIONAL"       Rejected(min_notional)
    InvalidOrder "LOT_SIZE", "PRICE_FILTER",
      other "Filter failure"                    Rejected(filter)
    other InvalidOrder / BadRequest             Rejected(invalid_order) / Rejected(bad_request)
    BadSymbol, NotSupported, ArgumentsRequired,
      RestrictedLocation, ManualInteraction,
      any other ExchangeError, anything else    NeedsHuman

Placement treats every "the request may have reached the matching engine" failure as
Ambiguous: Binance documents the execution status of an order as UNKNOWN after a timeout
or a 5xx, and a dropped connection says nothing either way. Throttling (429/418) and a
rejected timestamp are refused before execution, so they stay what they are.

Messages are rebuilt here: ccxt messages can carry request URLs (with the signed query
string), so query strings are cut and any caller-supplied secret is masked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from policyctl.exchanges.adapter import AdapterError, Ambiguous, NeedsHuman, Rejected, Transient

_QUERY = re.compile(r"(https?://[^\s?\"']+)\?[^\s\"']*")
_STATUS_418 = re.compile(r"\b418\b")
_BANNED_UNTIL = re.compile(r"banned until (\d{10,})")
_MAX_MESSAGE = 400


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without URL query strings or any of ``secrets``, and not too long."""
    out = _QUERY.sub(r"\1?<query>", text)
    for secret in secrets:
        if secret:
            out = out.replace(secret, "<redacted>")
    if len(out) > _MAX_MESSAGE:
        out = out[:_MAX_MESSAGE] + "..."
    return out


def retry_after_from_headers(headers: Mapping[str, Any] | None) -> float | None:
    """Seconds from a ``Retry-After`` header (case-insensitive), or None."""
    if not headers:
        return None
    for name, value in headers.items():
        if str(name).lower() == "retry-after":
            try:
                seconds = float(value)
            except (TypeError, ValueError):
                return None
            return seconds if seconds >= 0 else None
    return None


def classify(
    exc: BaseException,
    endpoint: str,
    *,
    placing: bool = False,
    retry_after: float | None = None,
    secrets: Iterable[str] = (),
) -> AdapterError:
    """The adapter error for ``exc`` raised by a call of ``endpoint`` (see the module table).

    ``placing`` marks an order placement (network failures become Ambiguous);
    ``retry_after`` is the server's ``Retry-After`` in seconds, if it sent one.
    """
    if isinstance(exc, AdapterError):
        return exc
    import ccxt  # lazily: the paper adapter and the engine never need it

    secrets = tuple(secrets)
    name = type(exc).__name__
    text = scrub(str(exc), secrets)
    message = f"{endpoint}: {name}: {text}" if endpoint else f"{name}: {text}"

    if not isinstance(exc, ccxt.BaseError):
        return NeedsHuman(f"unexpected failure, {message}", endpoint, exc)

    # -- throttling: before anything NetworkError-shaped (DDoSProtection is one) --------
    if isinstance(exc, ccxt.RateLimitExceeded):
        return Transient(f"rate limited, {message}", endpoint, exc, retry_after=retry_after)
    if isinstance(exc, ccxt.DDoSProtection):
        raw = str(exc)
        if _STATUS_418.search(raw) or "IP banned" in raw:
            until = _BANNED_UNTIL.search(raw)
            suffix = f" until {until.group(1)}" if until else ""
            return NeedsHuman(f"IP banned by the exchange{suffix}, {message}", endpoint, exc)
        if re.search(r"\b429\b", raw):
            return Transient(f"rate limited, {message}", endpoint, exc, retry_after=retry_after)
        return NeedsHuman(f"access blocked by the exchange, {message}", endpoint, exc)
    if isinstance(exc, ccxt.InvalidNonce):
        return Transient(f"request timestamp refused, {message}", endpoint, exc)

    # -- the request may or may not have been executed ----------------------------------
    if isinstance(exc, ccxt.OperationFailed):  # NetworkError, RequestTimeout, 5xx, BadResponse
        if placing:
            return Ambiguous(f"order status unknown, {message}", endpoint, exc)
        return Transient(message, endpoint, exc, retry_after=retry_after)

    # -- credentials and permissions -----------------------------------------------------
    if isinstance(exc, ccxt.AuthenticationError):  # PermissionDenied, AccountSuspended, ...
        return NeedsHuman(f"credentials or permissions, {message}", endpoint, exc)

    # -- the exchange refused this particular request ------------------------------------
    if isinstance(exc, ccxt.InsufficientFunds):
        return Rejected(message, endpoint, exc, reason="insufficient_funds")
    if isinstance(exc, ccxt.MarketClosed):
        return Rejected(message, endpoint, exc, reason="market_closed")
    if isinstance(exc, ccxt.DuplicateOrderId) or "Duplicate order sent" in str(exc):
        return Rejected(message, endpoint, exc, reason="duplicate")
    if isinstance(exc, ccxt.OrderNotFound):
        return Rejected(message, endpoint, exc, reason="not_found")
    if isinstance(exc, ccxt.OrderImmediatelyFillable):
        return Rejected(message, endpoint, exc, reason="would_take")
    if isinstance(exc, ccxt.OrderNotFillable):
        return Rejected(message, endpoint, exc, reason="not_fillable")
    if isinstance(exc, ccxt.BadSymbol):
        return NeedsHuman(f"unknown symbol, {message}", endpoint, exc)
    if isinstance(exc, ccxt.InvalidOrder | ccxt.BadRequest):
        raw = str(exc)
        if "NOTIONAL" in raw:
            return Rejected(message, endpoint, exc, reason="min_notional")
        if "Market is closed" in raw:
            return Rejected(message, endpoint, exc, reason="market_closed")
        if "LOT_SIZE" in raw or "PRICE_FILTER" in raw or "Filter failure" in raw:
            return Rejected(message, endpoint, exc, reason="filter")
        reason = "invalid_order" if isinstance(exc, ccxt.InvalidOrder) else "bad_request"
        return Rejected(message, endpoint, exc, reason=reason)
    # NotSupported, ArgumentsRequired, RestrictedLocation, ManualInteractionNeeded, other
    # ExchangeErrors: nothing the runtime can do on its own.
    return NeedsHuman(f"unhandled exchange error, {message}", endpoint, exc)
