"""The emulator against the real thing: payload shapes from ccxt's recorded Binance
responses, and error classification identical to a client pointed at api.binance.com."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import ccxt
import pytest

from policyctl.emulator import EmulatorHandle, make_ccxt_client
from policyctl.emulator import errors as binance_errors
from policyctl.emulator.faults import FaultInjector

FIXTURE = Path("/work/shared/data/ccxt-static/response/binance.json")
PROD_ORDER_URL = "https://api.binance.com/api/v3/order"


def _recorded(method: str, description: str) -> Any:
    if not FIXTURE.exists():
        pytest.skip(f"{FIXTURE} not available")
    cases = json.loads(FIXTURE.read_text())["methods"][method]
    return next(c["httpResponse"] for c in cases if c["description"] == description)


def _keys(body: Any) -> set[str]:
    return set(body[0] if isinstance(body, list) else body)


def test_payload_keys_match_recorded_binance_responses(
    emu: EmulatorHandle, client: ccxt.binance
) -> None:
    client.enableLastJsonResponse = True
    seen: dict[str, Any] = {}
    client.fetch_ticker("BTC/USDT")
    seen["ticker"] = client.last_json_response
    client.fetch_order_book("BTC/USDT")
    seen["book"] = client.last_json_response
    client.fetch_balance()
    seen["balance"] = client.last_json_response
    order = client.create_order("BTC/USDT", "limit", "buy", 0.01, 41000)
    seen["create"] = client.last_json_response
    client.fetch_open_orders("BTC/USDT")
    seen["open"] = client.last_json_response
    client.fetch_order(order["id"], "BTC/USDT")
    seen["order"] = client.last_json_response
    client.create_order("BTC/USDT", "market", "buy", 0.01)
    client.fetch_my_trades("BTC/USDT")
    seen["trades"] = client.last_json_response
    recorded = {
        "ticker": _recorded("fetchTicker", "public spot ticker"),
        "book": _recorded("fetchOrderBook", "spot orderbook"),
        "balance": _recorded("fetchBalance", "Spot balance"),
        "create": _recorded("createOrder", "spot +selfTradePrevention +iceberg"),
        "open": _recorded("fetchOpenOrders", "Fetch spot open orders"),
        "order": _recorded("fetchOrder", "Fetch spot closed order"),
        "trades": _recorded("fetchMyTrades", "Spot private trade"),
    }
    for name, body in recorded.items():
        expected = _keys(body) - ({"icebergQty"} if name == "create" else set())  # iceberg only
        assert _keys(seen[name]) == expected, name


def _raised(client: ccxt.binance, url: str, status: int, body: str) -> type | None:
    parsed = json.loads(body) if body.startswith("{") else None
    try:
        client.handle_errors(status, "reason", url, "POST", {}, body, parsed, {}, None)
        client.handle_http_status_code(status, "reason", url, "POST", body)
    except ccxt.BaseError as exc:
        return type(exc)
    return None


def _emulator_bodies() -> list[tuple[int, str]]:
    made = [
        binance_errors.new_order_rejected(binance_errors.DUPLICATE_ORDER),
        binance_errors.new_order_rejected(binance_errors.INSUFFICIENT_BALANCE),
        binance_errors.new_order_rejected(binance_errors.WOULD_MATCH),
        binance_errors.cancel_rejected(),
        binance_errors.market_closed(),
        binance_errors.no_such_order(),
        binance_errors.invalid_symbol(),
        binance_errors.invalid_interval(),
        binance_errors.mandatory_param("quantity"),
        binance_errors.bad_signature(),
        binance_errors.bad_api_key_format(),
        binance_errors.rejected_api_key(),
        binance_errors.timestamp_ahead(),
        binance_errors.timestamp_outside_window(),
        binance_errors.recv_window_too_large(),
    ]
    made += [
        binance_errors.filter_failure(name)
        for name in (
            "PRICE_FILTER",
            "LOT_SIZE",
            "MARKET_LOT_SIZE",
            "NOTIONAL",
            "MIN_NOTIONAL",
            "MAX_NUM_ORDERS",
        )
    ]
    bodies = [(e.status, json.dumps(e.body())) for e in made]
    faults = FaultInjector()
    kinds: list[tuple[str, int | None, Literal["html", "json"]]] = [
        ("rate_limit", None, "html"),
        ("ip_ban", None, "html"),
    ]
    kinds += [("server_error", s, b) for s in (500, 502, 503, 504) for b in ("html", "json")]
    for kind, status, body in kinds:
        fault = faults.add("all", kind, status=status, body=body)
        code, _, payload = fault.http_response(0)
        bodies.append((code, payload.decode()))
    return bodies


@pytest.mark.parametrize(("status", "body"), _emulator_bodies())
def test_error_classes_match_a_client_of_the_real_exchange(status: int, body: str) -> None:
    real = ccxt.binance()
    emulated = make_ccxt_client("http://127.0.0.1:9", "k", "s")
    expected = _raised(real, PROD_ORDER_URL, status, body)
    assert expected is not None
    assert _raised(emulated, "http://127.0.0.1:9/api/v3/order", status, body) is expected


def test_without_the_spot_table_merge_classification_would_drift() -> None:
    # -1008 (503 "Server is currently overloaded") is a spot-only code in ccxt.
    body = json.dumps(
        {
            "code": -1008,
            "msg": "Server is currently overloaded with other "
            "requests. Please try again in a few minutes.",
        }
    )
    plain = ccxt.binance()
    assert _raised(plain, PROD_ORDER_URL, 503, body) is ccxt.OperationFailed
    assert _raised(plain, "http://127.0.0.1:9/api/v3/order", 503, body) is ccxt.ExchangeError
