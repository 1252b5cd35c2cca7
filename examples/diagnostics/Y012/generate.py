"""Write ``policy.yaml`` here: a policy with a pasted candle dump, over 1 MiB.

A file that large is not committed; the golden test runs this script first (and removes the
file afterwards). Run it by hand to reproduce: ``python examples/diagnostics/Y012/generate.py``.
"""

from pathlib import Path

HEADER = """\
policy: trend
market:
  symbols: [BTC/USDT]
  timeframe: 1m
# candles exported for a backtest, pasted here by mistake:
"""


def main() -> None:
    rows = []
    for i in range(12_000):
        day, minute = divmod(i, 1440)
        price = 42_000 + (i * 7919) % 1000
        rows.append(
            f"# 2024-01-{day + 1:02d}T{minute // 60:02d}:{minute % 60:02d}:00Z, "
            f"open {price}.10, high {price + 12}.50, low {price - 9}.25, close {price + 3}.75, "
            f"volume {(i * 31) % 97 + 3}.125"
        )
    Path(__file__).with_name("policy.yaml").write_text(HEADER + "\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
