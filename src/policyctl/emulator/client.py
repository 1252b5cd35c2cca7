"""The ccxt client pointed at the emulator, configured for spot-only use.

``make_ccxt_client`` is the documented construction:

.. code-block:: python

    client = ccxt.binance({
        "apiKey": api_key, "secret": secret,
        "timeout": timeout_ms, "enableRateLimit": False,
        "options": {
            "defaultType": "spot",
            "fetchMarkets": {"types": ["spot"]},  # only GET /api/v3/exchangeInfo
            "fetchCurrencies": False,  # else GET /sapi/v1/capital/config/getall
            "fetchMargins": False,     # else GET /sapi/v1/margin/allPairs (+ isolated)
            "adjustForTimeDifference": False,
        },
    })
    # every entry of urls["api"] keeps its path and moves to the emulator
    client.urls["api"] = {name: base + urlsplit(url).path for name, url in ...}

so ``load_markets`` makes exactly one request (``exchangeInfo``), and nothing can leave the
loopback interface (sandbox/demo URL sets are rebased too).  One more adjustment keeps error
classification identical to the real exchange: ccxt looks up Binance's *spot-only* error
codes (e.g. -1008, -1131) by the request URL's host, ``https://api.binance.com``, which an
emulator URL never matches; the spot table is therefore merged into the client's general
table (spot entries first, exactly the order ccxt uses for api.binance.com).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import ccxt

SPOT_OPTIONS: dict[str, Any] = {
    "defaultType": "spot",
    "fetchMarkets": {"types": ["spot"]},
    "fetchCurrencies": False,
    "fetchMargins": False,
    "adjustForTimeDifference": False,
}


def _rebase(urls: dict[str, str], base: str) -> dict[str, str]:
    return {name: base + urlsplit(url).path for name, url in urls.items()}


def make_ccxt_client(
    url: str,
    api_key: str | None,
    secret: str | None,
    *,
    timeout_ms: int = 10_000,
    enable_rate_limit: bool = False,
    options: dict[str, Any] | None = None,
) -> ccxt.binance:
    """A real ``ccxt.binance`` talking to the emulator at ``url`` (see module docs)."""
    config: dict[str, Any] = {
        "timeout": timeout_ms,
        "enableRateLimit": enable_rate_limit,
        "options": {**SPOT_OPTIONS, **(options or {})},
    }
    if api_key is not None:
        config["apiKey"] = api_key
    if secret is not None:
        config["secret"] = secret
    client = ccxt.binance(config)
    base = url.rstrip("/")
    api_urls = _rebase(client.urls["api"], base)
    client.urls["api"] = api_urls
    for spare in ("test", "demo"):
        if isinstance(client.urls.get(spare), dict):
            client.urls[spare] = dict(api_urls)
    spot_exact = client.exceptions.get("spot", {}).get("exact", {})
    client.exceptions = {
        **client.exceptions,
        "exact": {**client.exceptions["exact"], **spot_exact},
    }
    return client
