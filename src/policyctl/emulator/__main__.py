"""``python -m policyctl.emulator --port 8765 --data FILE.csv``: an emulator for humans.

Serves the symbols of the given candle files (markets inferred from the data's decimals)
on 127.0.0.1, replays one bar every ``1/speed`` seconds (``--speed 0``: only when
``POST /_emulator/advance`` asks), and prints the URL and the ccxt construction.  API
credentials come from ``--api-key``/``--secret`` or are generated fresh for this run.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import threading
from collections.abc import Sequence

from .candles import describe_file, infer_market, read_csv
from .handle import start_emulator
from .marketdata import Bar
from .markets import MarketSpec


def _balance(text: str) -> tuple[str, str]:
    asset, _, amount = text.partition("=")
    if not asset or not amount:
        raise argparse.ArgumentTypeError(f"expected ASSET=AMOUNT, got {text!r}")
    return asset, amount


def synthetic_bars(seed: int, symbols: list[str], timeframe: str, n: int) -> list[tuple[str, list[Bar]]]:
    """The simulator's synthetic market as emulator candles (prices as exact decimals)."""
    from decimal import Decimal

    from policyctl.simulator.synthetic import synthetic_market

    md = synthetic_market(seed, bars=n, timeframe=timeframe, symbols=tuple(s.strip() for s in symbols))
    out = []
    for s, ser in md.series.items():
        bars = [Bar(int(md.timestamps[t]), *(Decimal(repr(float(getattr(ser, f)[t])))
                                             for f in ("open", "high", "low", "close", "volume")))
                for t in range(len(md.timestamps))]
        out.append((s, bars))
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m policyctl.emulator",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    p.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="FILE.csv",
        help="OHLCV CSV named {exchange}_{BASE}-{QUOTE}_{timeframe}.csv (repeatable)",
    )
    p.add_argument("--synthetic", type=int, default=None, metavar="SEED",
                   help="serve policyctl's seeded synthetic market instead of files")
    p.add_argument("--symbols", default="BTC/USDT,ETH/USDT", help="symbols of the synthetic market")
    p.add_argument("--timeframe", default="5m", help="timeframe of the synthetic market")
    p.add_argument("--bars", type=int, default=5000, help="bars of the synthetic market")
    p.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="bars replayed per second; 0 = advance only via the admin API",
    )
    p.add_argument("--api-key", default=None)
    p.add_argument("--secret", default=None)
    p.add_argument(
        "--balance",
        type=_balance,
        action="append",
        default=[],
        metavar="ASSET=AMOUNT",
        help="starting balance (repeatable)",
    )
    p.add_argument("--verbose", action="store_true", help="log every request to stderr")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    markets: list[MarketSpec] = []
    candles: dict[str, tuple[list[Bar], str]] = {}
    if args.synthetic is None and not args.data:
        print("give --data FILE.csv (repeatable) or --synthetic SEED", file=sys.stderr)
        return 2
    if args.synthetic is not None:
        for symbol, bars in synthetic_bars(args.synthetic, args.symbols.split(","), args.timeframe, args.bars):
            markets.append(infer_market(symbol, bars))
            candles[symbol] = (bars, args.timeframe)
    for path in args.data:
        symbol, interval = describe_file(path)
        bars = read_csv(path)
        if not bars:
            print(f"{path}: no candles", file=sys.stderr)
            return 2
        markets.append(infer_market(symbol, bars))
        candles[symbol] = (bars, interval)
    api_key = args.api_key or secrets.token_hex(32)
    secret = args.secret or secrets.token_hex(32)
    balances = dict(args.balance) or {m.quote: "10000" for m in markets}
    emu = start_emulator(
        host=args.host,
        port=args.port,
        markets=markets,
        candles=candles,
        api_key=api_key,
        secret=secret,
        balances=balances,
        verbose=args.verbose,
    )
    print(f"policyctl emulator (Binance spot REST) at {emu.url}")
    print(f"  markets: {', '.join(m.unified for m in markets)}; balances: {balances}")
    print(f"  api key: {api_key}\n  secret:  {secret}")
    print("  ccxt:    policyctl.emulator.make_ccxt_client(url, api_key, secret)")
    print(f"  admin:   POST {emu.url}/_emulator/advance, /price, /fault, ...; GET /_emulator/state")
    sys.stdout.flush()
    stop = threading.Event()
    try:
        while not stop.wait(1.0 / args.speed if args.speed > 0 else 3600):
            if args.speed > 0 and emu.advance(1) == 0:
                print("replay finished; still serving (Ctrl-C to stop)")
                args.speed = 0
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
