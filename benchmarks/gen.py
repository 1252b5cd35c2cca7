"""Generate large, realistic policies for the benchmarks (deterministic)."""

from __future__ import annotations

import random

SYMBOLS = [f"{b}/USDT" for b in (
    "BTC ETH SOL XRP ADA DOGE AVAX DOT LINK MATIC LTC BCH ATOM UNI ETC XLM NEAR APT ARB OP"
).split()]

_CONDITIONS = [
    "crosses_above(sma(close, {a}), sma(close, {b}))",
    "crosses_below(ema(close, {a}), ema(close, {b}))",
    "rsi(close, 14) < {r}",
    "rsi(close, {a}) > {r2}",
    "close > highest(high, {b})[1]",
    "close < lowest(low, {a})[1]",
    "change(close, {a}) <= -{p}%",
    "volume > 1.5 * sma(volume, {b})",
    "close > sma(close, {b}) + 2 * stdev(close, {b})",
    "atr(14) / close < {p}%",
    "change(close of \"BTC/USDT\", {a}) > -{p}%",
]


def condition(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(1, 3)):
        a = rng.choice([5, 10, 14, 20])
        b = rng.choice([30, 50, 100])
        parts.append(rng.choice(_CONDITIONS).format(
            a=a, b=b, r=rng.randint(20, 40), r2=rng.randint(60, 80), p=rng.randint(1, 9)))
    return " and ".join(parts)


def rules_text(n_rules: int, seed: int = 7) -> str:
    """A `.rules` file with ``n_rules`` statements: triggers, caps and breakers."""
    rng = random.Random(seed)
    out = []
    for i in range(n_rules):
        k = i % 10
        if k < 7:
            action = rng.choice([
                "buy 2% of equity stop 3% take 6%",
                "buy risk 0.5% of equity per 2 * atr(14) stop 2 * atr(14)",
                "buy 250 USDT",
                "close",
            ])
            out.append(f"trigger t{i}:\n    when {condition(rng)}\n    then {action}\n")
        elif k < 9:
            out.append(f"cap c{i}: exposure.symbol <= {rng.randint(2, 9)}%\n")
        else:
            out.append(f"breaker b{i}:\n    when any(change(close, {rng.choice([12, 24])}) <= "
                       f"-{rng.randint(5, 15)}%)\n    then pause for {rng.randint(1, 6)}h\n")
    return "\n".join(out)


def policy_yaml(rules_file: str, symbols: list[str]) -> str:
    return (
        "policy: generated\n"
        "market:\n  exchange: binance\n"
        f"  symbols: [{', '.join(symbols)}]\n  timeframe: 5m\n"
        f"include: [{rules_file}]\n"
    )
