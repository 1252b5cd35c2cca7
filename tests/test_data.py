"""Market-data loaders: the real files under shared/data, and hand-made edge cases."""

from __future__ import annotations

import gzip
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from policyctl.simulator.data import (
    DataError,
    Gap,
    MarketData,
    Series,
    load,
    parse_symbol_from_filename,
    timeframe_to_ms,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
OHLCV = DATA / "ohlcv"
FT = DATA / "original" / "freqtrade" / "tests" / "testdata"
FT_OLD = DATA / "original" / "freqtrade-history" / "4d3740d4" / "tests" / "testdata"

needs_data = pytest.mark.skipif(
    not OHLCV.is_dir(), reason=f"shared market data not found at {DATA}"
)


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def internal(md: MarketData, key: str | None = None) -> list[Gap]:
    return [g for g in md.gaps if g.kind == "internal" and (key is None or g.symbol == key)]


# file, symbol, rows, first, last (minutes), missing bars, gaps: shared/data/README.md's table
# (index_BTC-USD_1M: month-end labels, 2012-01-31 = January, are moved to the month's open)
_TABLE = """
bittrex_ETH-BTC_5m               ETH/BTC 5760 2018-01-10T04:55 2018-01-30T04:50 0 0
bittrex_ADA-BTC_5m               ADA/BTC 5720 2018-01-10T04:55 2018-01-30T04:50 40 5
bittrex_DASH-BTC_5m              DASH/BTC 5758 2018-01-10T04:55 2018-01-30T04:50 2 2
bittrex_ETC-BTC_5m               ETC/BTC 5759 2018-01-10T04:55 2018-01-30T04:45 0 0
bittrex_LTC-BTC_5m               LTC/BTC 5760 2018-01-10T04:55 2018-01-30T04:50 0 0
bittrex_NXT-BTC_5m               NXT/BTC 5760 2018-01-10T04:55 2018-01-30T04:50 0 0
bittrex_POWR-BTC_5m              POWR/BTC 5754 2018-01-10T04:55 2018-01-30T04:50 6 6
bittrex_XLM-BTC_5m               XLM/BTC 5760 2018-01-10T04:55 2018-01-30T04:50 0 0
bittrex_XMR-BTC_5m               XMR/BTC 5758 2018-01-10T04:55 2018-01-30T04:50 2 2
bittrex_ZEC-BTC_5m               ZEC/BTC 5757 2018-01-10T04:55 2018-01-30T04:45 2 2
bittrex_ETH-BTC_1m               ETH/BTC 14397 2018-01-20T04:53 2018-01-30T04:50 1 1
bittrex_ADA-BTC_1m               ADA/BTC 14383 2018-01-20T04:55 2018-01-30T04:51 14 14
bittrex_DASH-BTC_1m              DASH/BTC 12444 2018-01-20T04:54 2018-01-30T04:51 1954 1493
bittrex_ETC-BTC_1m               ETC/BTC 13783 2018-01-20T04:53 2018-01-30T04:49 614 537
bittrex_LTC-BTC_1m               LTC/BTC 14360 2018-01-20T04:53 2018-01-30T04:50 38 38
bittrex_NXT-BTC_1m               NXT/BTC 12960 2018-01-20T04:53 2018-01-30T04:50 1438 1167
bittrex_POWR-BTC_1m              POWR/BTC 11976 2018-01-20T04:54 2018-01-30T04:50 2421 1719
bittrex_XLM-BTC_1m               XLM/BTC 14373 2018-01-20T04:53 2018-01-30T04:50 25 25
bittrex_XMR-BTC_1m               XMR/BTC 12519 2018-01-20T04:52 2018-01-30T04:48 1878 1416
bittrex_ZEC-BTC_1m               ZEC/BTC 12707 2018-01-20T04:52 2018-01-30T04:49 1691 1307
bittrex_ETC-BTC_1m_2017-11       ETC/BTC 13681 2017-11-04T23:02 2017-11-14T22:59 717 538
bittrex_ETH-BTC_30m              ETH/BTC 1920 2017-12-03T13:00 2018-01-12T12:30 0 0
binance_XRP-ETH_1m               XRP/ETH 2469 2019-10-11T00:00 2019-10-13T11:19 1091 676
binance_XRP-ETH_5m               XRP/ETH 706 2019-10-11T00:00 2019-10-13T11:15 6 6
unknown_BTC-USDT_5m              BTC/USDT 10999 2023-01-02T16:45 2023-02-09T21:15 0 0
unknown_BCH-USDT_5m              BCH/USDT 999 2024-01-28T23:55 2024-02-01T11:05 0 0
unknown_XRP-USDT-USDT_5m_futures XRP/USDT:USDT 1999 2021-11-15T00:00 2021-11-21T22:30 0 0
unknown_XRP-USDT-USDT_1h_futures XRP/USDT:USDT 100 2021-11-17T01:00 2021-11-21T04:00 0 0
unknown_XRP-USDT-USDT_1h_mark    XRP/USDT:USDT@mark 100 2021-11-15T06:00 2021-11-19T09:00 0 0
unknown_XRP-USDT-USDT_8h_mark    XRP/USDT:USDT@mark 91 2021-11-18T00:00 2021-12-18T00:00 0 0
index_BTC-USD_1M                 BTC/USD 156 2012-01-01T00:00 2024-12-01T00:00 0 0
"""
README_TABLE = [
    (f, sym, int(rows), first + ":00Z", last + ":00Z", int(missing), int(gaps))
    for f, sym, rows, first, last, missing, gaps in map(str.split, _TABLE.strip().splitlines())
]


# --------------------------------------------------------------------------------------
# the real files


@needs_data
@pytest.mark.parametrize(
    ("name", "key", "rows", "first", "last", "missing", "n_gaps"),
    README_TABLE,
    ids=[row[0] for row in README_TABLE],
)
def test_readme_table(
    name: str, key: str, rows: int, first: str, last: str, missing: int, n_gaps: int
) -> None:
    md = load([OHLCV / f"{name}.csv"])
    assert md.symbols == (key,)
    s = md.series[key]
    assert md.sources[0].rows == rows
    assert int(np.count_nonzero(~np.isnan(s.close))) == rows
    assert md.start_ms == ms(first)
    assert int(md.timestamps[-1]) == ms(last)
    gaps = internal(md)
    assert len(gaps) == n_gaps
    assert sum(g.bars for g in gaps) == missing
    assert len(md) == rows + missing
    assert md.bad_bars == ()  # the README checked low <= min(o, c) <= max(o, c) <= high


@needs_data
def test_every_ohlcv_csv_loads() -> None:
    table = {row[0]: row for row in README_TABLE}
    files = sorted(OHLCV.glob("*.csv"))
    assert len(files) >= len(README_TABLE)
    for f in files:
        md = load([f])
        assert len(md.series) == 1
        if f.stem in table:
            assert md.sources[0].rows == table[f.stem][2]
        assert np.all(np.diff(md.timestamps) > 0)


@needs_data
def test_source_fingerprint_is_sha256_of_bytes() -> None:
    f = OHLCV / "bittrex_ADA-BTC_5m.csv"
    md = load([str(f)])
    (src,) = md.sources
    assert src.path == str(f)
    assert src.format == "csv"
    assert src.sha256 == hashlib.sha256(f.read_bytes()).hexdigest()
    assert src.symbol == "ADA/BTC" and src.timeframe == "5m"


@needs_data
def test_ada_gaps_are_reported_not_filled() -> None:
    md = load([OHLCV / "bittrex_ADA-BTC_5m.csv"])
    s = md.series["ADA/BTC"]
    for g in md.gaps:
        assert g.kind == "internal"
        assert g.end_ms - g.start_ms == g.bars * md.timeframe_ms
        inside = (md.timestamps >= g.start_ms) & (md.timestamps < g.end_ms)
        assert int(inside.sum()) == g.bars
        assert np.all(np.isnan(s.close[inside]))
        # the bars around the hole exist
        before = int(np.searchsorted(md.timestamps, g.start_ms)) - 1
        assert not np.isnan(s.close[before])
        assert not np.isnan(s.close[before + g.bars + 1])


FEATHER_TWINS = [
    ("ETH_BTC-5m.feather", "bittrex_ETH-BTC_5m.csv"),
    ("ADA_BTC-5m.feather", "bittrex_ADA-BTC_5m.csv"),
    ("DASH_BTC-5m.feather", "bittrex_DASH-BTC_5m.csv"),
    ("ETC_BTC-5m.feather", "bittrex_ETC-BTC_5m.csv"),
    ("LTC_BTC-5m.feather", "bittrex_LTC-BTC_5m.csv"),
    ("NXT_BTC-5m.feather", "bittrex_NXT-BTC_5m.csv"),
    ("TRX_BTC-5m.feather", "bittrex_POWR-BTC_5m.csv"),  # relabelled upstream: really POWR
    ("UNITTEST_BTC-5m.feather", "bittrex_ETH-BTC_5m.csv"),
    ("XLM_BTC-5m.feather", "bittrex_XLM-BTC_5m.csv"),
    ("XMR_BTC-5m.feather", "bittrex_XMR-BTC_5m.csv"),
    ("ZEC_BTC-5m.feather", "bittrex_ZEC-BTC_5m.csv"),
    ("UNITTEST_BTC-30m.feather", "bittrex_ETH-BTC_30m.csv"),
    ("XRP_ETH-1m.feather", "binance_XRP-ETH_1m.csv"),
    ("XRP_ETH-5m.feather", "binance_XRP-ETH_5m.csv"),
    ("futures/XRP_USDT_USDT-5m-futures.feather", "unknown_XRP-USDT-USDT_5m_futures.csv"),
    ("futures/XRP_USDT_USDT-1h-futures.feather", "unknown_XRP-USDT-USDT_1h_futures.csv"),
    ("futures/XRP_USDT_USDT-1h-mark.feather", "unknown_XRP-USDT-USDT_1h_mark.csv"),
    ("futures/XRP_USDT_USDT-8h-mark.feather", "unknown_XRP-USDT-USDT_8h_mark.csv"),
]


def only(md: MarketData) -> Series:
    (s,) = md.series.values()
    return s


@needs_data
@pytest.mark.parametrize(("feather", "csv_name"), FEATHER_TWINS, ids=[f for f, _ in FEATHER_TWINS])
def test_feather_matches_csv(feather: str, csv_name: str) -> None:
    a = load([FT / feather])
    b = load([OHLCV / csv_name])
    assert a.sources[0].format == "feather"
    assert a.timeframe == b.timeframe
    np.testing.assert_array_equal(a.timestamps, b.timestamps)
    sa, sb = only(a), only(b)
    assert sa.candle_type == sb.candle_type
    for field in ("open", "high", "low", "close", "volume"):
        # feathers carry 1-ulp float noise (0.09840000000000001)
        np.testing.assert_allclose(getattr(sa, field), getattr(sb, field), rtol=1e-12)
    assert [(g.start_ms, g.bars) for g in a.gaps] == [(g.start_ms, g.bars) for g in b.gaps]


@needs_data
def test_feather_names_give_symbols() -> None:
    assert only(load([FT / "TRX_BTC-5m.feather"])).symbol == "TRX/BTC"  # the name is all we have
    md = load([FT / "futures" / "XRP_USDT_USDT-1h-mark.feather"])
    assert md.symbols == ("XRP/USDT:USDT@mark",)
    assert only(md).symbol == "XRP/USDT:USDT" and only(md).candle_type == "mark"


@needs_data
def test_freqtrade_json_is_exact() -> None:
    a = load([FT_OLD / "ETH_BTC-5m.json"])
    b = load([OHLCV / "bittrex_ETH-BTC_5m.csv"])
    assert a.sources[0].format == "json"
    np.testing.assert_array_equal(a.timestamps, b.timestamps)
    for field in ("open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(getattr(only(a), field), getattr(only(b), field))


@needs_data
def test_json_gz_futures_name() -> None:
    a = load([FT / "futures" / "XRP_USDT_USDT-1h-futures.json.gz"])
    b = load([OHLCV / "unknown_XRP-USDT-USDT_1h_futures.csv"])
    assert a.symbols == ("XRP/USDT:USDT",) and a.timeframe == "1h"
    assert a.sources[0].format == "json.gz"
    np.testing.assert_array_equal(a.timestamps, b.timestamps)
    np.testing.assert_array_equal(only(a).close, only(b).close)


@needs_data
def test_json_with_forward_filled_bars() -> None:
    # the 2019 JSON holds 6 zero-volume fill bars exactly where the CSV has its 6 gaps
    a = load([FT_OLD / "XRP_ETH-5m.json"])
    b = load([OHLCV / "binance_XRP-ETH_5m.csv"])
    assert a.sources[0].rows == 712 and internal(a) == []
    np.testing.assert_array_equal(a.timestamps, b.timestamps)
    sa, sb = only(a), only(b)
    present = ~np.isnan(sb.close)
    np.testing.assert_array_equal(sa.close[present], sb.close[present])
    filled = ~present
    assert int(filled.sum()) == 6
    assert np.all(sa.volume[filled] == 0)


@needs_data
def test_pandas_columns_json_needs_symbol_and_timeframe() -> None:
    f = FT / "orderflow" / "candles.json"
    with pytest.raises(DataError, match="cannot tell the symbol"):
        load([f], timeframe="5m")
    with pytest.raises(DataError, match="cannot tell the timeframe"):
        load([f], symbols=["BTC/USDT"])
    a = load([f], timeframe="5m", symbols=["BTC/USDT"])
    b = load([OHLCV / "unknown_BTC-USDT_5m.csv"])
    assert a.sources[0].format == "pandas-json"
    np.testing.assert_array_equal(a.timestamps, b.timestamps)
    np.testing.assert_allclose(only(a).close, only(b).close, rtol=1e-9)


@needs_data
def test_backtesting_py_csv_month_end_labels() -> None:
    f = DATA / "original" / "backtesting.py-0.6.6" / "BTCUSD.csv"
    a = load([f], timeframe="1M", symbols=["BTC/USD"])
    b = load([OHLCV / "index_BTC-USD_1M.csv"])
    assert "month-end" in a.sources[0].note
    np.testing.assert_array_equal(a.timestamps, b.timestamps)
    np.testing.assert_array_equal(only(a).close, only(b).close)
    assert a.timeframe == "1M" and a.timeframe_ms == timeframe_to_ms("1M")
    assert a.end_ms == ms("2025-01-01T00:00:00Z")


@needs_data
def test_ten_bittrex_1m_files_on_one_grid() -> None:
    files = sorted(OHLCV.glob("bittrex_*-BTC_1m.csv"))
    assert len(files) == 10
    md = load(files)
    assert md.symbols == tuple(sorted(md.symbols)) and len(md.symbols) == 10
    assert md.start_ms == ms("2018-01-20T04:52:00Z")
    assert int(md.timestamps[-1]) == ms("2018-01-30T04:51:00Z")
    assert len(md) == 14400
    assert np.all(np.diff(md.timestamps) == 60_000)
    table = {row[1]: row for row in README_TABLE if row[0].endswith("_1m")}
    for key, s in md.series.items():
        _, _, rows, first, last, missing, n_gaps = table[key]
        assert len(s) == 14400
        assert int(np.count_nonzero(~np.isnan(s.close))) == rows
        gaps = internal(md, key)
        assert (len(gaps), sum(g.bars for g in gaps)) == (n_gaps, missing)
        lead = [g for g in md.gaps if g.symbol == key and g.kind == "leading"]
        trail = [g for g in md.gaps if g.symbol == key and g.kind == "trailing"]
        assert sum(g.bars for g in lead) == (ms(first) - md.start_ms) // 60_000
        assert sum(g.bars for g in trail) == (int(md.timestamps[-1]) - ms(last)) // 60_000
        if trail:
            assert trail[0].end_ms == md.end_ms
    # ADA starts three bars after the grid: a leading gap, not an internal one
    (lead,) = [g for g in md.gaps if g.symbol == "ADA/BTC" and g.kind == "leading"]
    assert (lead.start_ms, lead.end_ms, lead.bars) == (md.start_ms, ms("2018-01-20T04:55:00Z"), 3)


@needs_data
def test_1m_resampled_matches_5m() -> None:
    # README: Bittrex 1m resampled to 5m equals the 5m close on every overlapping bar (ETH)
    one = load([OHLCV / "bittrex_ETH-BTC_1m.csv"])
    five = load([OHLCV / "bittrex_ETH-BTC_5m.csv"])
    s1 = only(one)
    last_minute = one.timestamps % 300_000 == 240_000
    t = one.timestamps[last_minute] - 240_000
    c = s1.close[last_minute]
    ok = ~np.isnan(c)
    idx = np.searchsorted(five.timestamps, t[ok])
    np.testing.assert_array_equal(only(five).close[idx], c[ok])


@needs_data
def test_folder_loading() -> None:
    md = load([FT], timeframe="5m")  # non-recursive; trades / 0-byte 8m / [] 4m not selected
    assert "TRX/BTC" in md.symbols and "XRP/ETH" in md.symbols and len(md.symbols) == 12
    assert all(src.format == "feather" for src in md.sources)
    md = load([OHLCV], timeframe="1h")
    assert md.symbols == ("XRP/USDT:USDT", "XRP/USDT:USDT@mark")
    md = load([OHLCV], timeframe="5m", symbols=["ADA/BTC", "BTC/USDT"])
    assert md.symbols == ("ADA/BTC", "BTC/USDT")
    assert [g.kind for g in md.gaps if g.symbol == "BTC/USDT"] == ["leading"]
    assert [g.kind for g in md.gaps if g.symbol == "ADA/BTC"][-1] == "trailing"


@needs_data
def test_folder_with_mixed_timeframes_is_an_error() -> None:
    with pytest.raises(DataError, match="mixed timeframes"):
        load([OHLCV])
    with pytest.raises(DataError, match="mixed timeframes"):
        load([OHLCV / "bittrex_ETH-BTC_1m.csv", OHLCV / "bittrex_ETH-BTC_5m.csv"])


@needs_data
def test_two_periods_of_one_symbol_merge() -> None:
    md = load([OHLCV / "bittrex_ETC-BTC_1m.csv", OHLCV / "bittrex_ETC-BTC_1m_2017-11.csv"])
    assert md.symbols == ("ETC/BTC",)
    s = md.series["ETC/BTC"]
    assert int(np.count_nonzero(~np.isnan(s.close))) == 13783 + 13681
    big = max(internal(md), key=lambda g: g.bars)
    assert big.start_ms == ms("2017-11-14T23:00:00Z")
    assert big.end_ms == ms("2018-01-20T04:53:00Z")


@needs_data
def test_exact_copies_merge_and_noisy_copies_conflict() -> None:
    md = load([FT_OLD / "ETH_BTC-5m.json", OHLCV / "bittrex_ETH-BTC_5m.csv"])
    assert [s.duplicates_dropped for s in md.sources] == [0, 5760]
    with pytest.raises(DataError) as info:
        load([FT / "ETH_BTC-5m.feather", OHLCV / "bittrex_ETH-BTC_5m.csv"])
    msg = str(info.value)
    assert "two different candles" in msg
    assert "ETH_BTC-5m.feather row" in msg and "bittrex_ETH-BTC_5m.csv:" in msg


@needs_data
@pytest.mark.parametrize(
    ("name", "pattern"),
    [
        ("UNITTEST_BTC-8m.feather", "no candles"),  # 0 bytes
        ("NOPAIR_XXX-4m.json", "no candles"),  # []
        ("XRP_ETH-trades.feather", "not OHLCV candles"),
        ("futures/XRP_USDT_USDT-8h-funding_rate.feather", "funding_rate"),
        ("pairs.json", "expected \\[timestamp"),
    ],
)
def test_edge_case_fixtures_give_clean_errors(name: str, pattern: str) -> None:
    with pytest.raises(DataError, match=pattern) as info:
        load([FT / name])
    assert str(FT / name) in str(info.value)


# --------------------------------------------------------------------------------------
# hand-made files

HEADER = "timestamp,open,high,low,close,volume\n"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def candle_rows(start: str, n: int, step_ms: int = 300_000, price: float = 100.0) -> list[str]:
    t0 = ms(start)
    out = []
    for i in range(n):
        t = datetime.fromtimestamp((t0 + i * step_ms) / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        p = price + i
        out.append(f"{t},{p},{p + 2},{p - 1},{p + 1},{10 + i}")
    return out


def test_coarser_data_than_the_name_says(tmp_path: Path) -> None:
    f = write(
        tmp_path / "x_BTC-USDT_5m.csv",
        HEADER + "\n".join(candle_rows("2024-01-01T00:00:00Z", 20, 1_800_000)),
    )
    with pytest.raises(DataError, match="probably not 5m candles"):
        load([f])


def test_epoch_ms_csv_and_sorting(tmp_path: Path) -> None:
    rows = [
        "1704067500000,101,103,100,102,5",
        "1704067200000,100,102,99,101,4",
        "1704067200000,100,102,99,101,4",  # exact duplicate: dropped
        "1704068100000,103,104,102,103.5,",  # empty volume: NaN, not a bad bar
    ]
    f = write(tmp_path / "kraken_ETH-EUR_5m.csv", HEADER + "\n".join(rows) + "\n")
    md = load([f])
    assert md.symbols == ("ETH/EUR",)
    s = md.series["ETH/EUR"]
    np.testing.assert_array_equal(md.timestamps, 1704067200000 + 300_000 * np.arange(4))
    np.testing.assert_array_equal(s.close, [101, 102, np.nan, 103.5])
    assert np.isnan(s.volume[3]) and md.bad_bars == ()
    (src,) = md.sources
    assert src.reordered and src.duplicates_dropped == 1 and src.rows == 4
    assert md.gaps == (Gap("ETH/EUR", 1704067800000, 1704068100000, 1, "internal"),)


def test_conflicting_duplicate_names_file_and_line(tmp_path: Path) -> None:
    rows = candle_rows("2024-01-01T00:00:00Z", 3)
    rows.append(rows[1].replace(",10", ",99"))  # same timestamp, other volume
    f = write(tmp_path / "x_BTC-USDT_5m.csv", HEADER + "\n".join(rows))
    with pytest.raises(DataError, match="two different candles") as info:
        load([f])
    assert info.value.path == str(f) and info.value.line == 5 and info.value.row == 4
    assert str(info.value).startswith(f"{f}:5: ")
    span = info.value.span()
    assert span is not None and (span.file, span.line) == (str(f), 5)


def test_off_grid_timestamp(tmp_path: Path) -> None:
    rows = candle_rows("2024-01-01T00:00:00Z", 3)
    rows[2] = rows[2].replace("00:10:00Z", "00:11:00Z")
    f = write(tmp_path / "x_BTC-USDT_5m.csv", HEADER + "\n".join(rows))
    with pytest.raises(DataError, match="not on the 5m grid") as info:
        load([f])
    assert info.value.line == 4


def test_bad_bars_become_nan_and_are_reported(tmp_path: Path) -> None:
    rows = candle_rows("2024-01-01T00:00:00Z", 6)
    rows[1] = rows[1].split(",")[0] + ",101,101.5,100,102,11"  # high below close
    rows[2] = rows[2].split(",")[0] + ",-1,104,101,103,12"  # negative open
    rows[3] = rows[3].split(",")[0] + ",103,105,102,nan,13"  # not finite
    rows[4] = rows[4].split(",")[0] + ",104,106,103,105,-5"  # negative volume
    f = write(tmp_path / "x_BTC-USDT_5m.csv", HEADER + "\n".join(rows))
    md = load([f])
    s = md.series["BTC/USDT"]
    assert [b.reason for b in md.bad_bars] == [
        "high below open/close/low",
        "open is not positive",
        "missing close",
        "negative volume",
    ]
    assert all(b.symbol == "BTC/USDT" and b.source == str(f) for b in md.bad_bars)
    assert [b.timestamp_ms for b in md.bad_bars] == list(md.timestamps[1:5])
    for field in ("open", "high", "low", "close", "volume"):
        arr = getattr(s, field)
        assert np.all(np.isnan(arr[1:5])) and not np.isnan(arr[0]) and not np.isnan(arr[5])
    assert internal(md) == []  # bad bars are present rows, not gaps


def test_not_a_number_names_line(tmp_path: Path) -> None:
    rows = candle_rows("2024-01-01T00:00:00Z", 3)
    rows[1] = rows[1].rsplit(",", 1)[0] + ",ten"
    f = write(tmp_path / "x_BTC-USDT_5m.csv", HEADER + "\n".join(rows))
    with pytest.raises(DataError, match="volume 'ten' is not a number") as info:
        load([f])
    assert info.value.line == 3


def test_csv_header_variants(tmp_path: Path) -> None:
    body = "Date,Open,High,Low,Close\n2024-01-01,1,2,0.5,1.5\n2024-01-02,1.5,2,1,1.2\n"
    f = write(tmp_path / "prices.csv", body)
    md = load([f], timeframe="1d", symbols=["FOO/USD"])
    assert md.symbols == ("FOO/USD",)
    assert np.all(np.isnan(md.series["FOO/USD"].volume))
    f2 = write(tmp_path / "nostamp.csv", "open,high,low,close\n1,2,0.5,1\n")
    with pytest.raises(DataError, match="no timestamp column"):
        load([f2], timeframe="1d", symbols=["FOO/USD"])


def test_ccxt_wrapper_and_plain_lists(tmp_path: Path) -> None:
    t0 = 1_704_067_200_000
    ohlcv = [[t0 + i * 300_000, 10 + i, 12 + i, 9 + i, 11 + i, 1.5] for i in range(12)]
    wrapped = write(
        tmp_path / "dump.json",
        json.dumps({"symbol": "SOL/USDT", "timeframe": "5m", "ohlcv": ohlcv}),
    )
    md = load([wrapped])
    assert md.symbols == ("SOL/USDT",) and md.timeframe == "5m"
    assert md.sources[0].format == "ccxt-json"
    plain = write(tmp_path / "candles.json", json.dumps(ohlcv))
    with pytest.raises(DataError, match="cannot tell the symbol"):
        load([plain], timeframe="5m")
    with pytest.raises(DataError, match="cannot tell the timeframe"):
        load([plain], symbols=["SOL/USDT"])
    md2 = load([plain], timeframe="5m", symbols=["SOL/USDT"])
    np.testing.assert_array_equal(md2.series["SOL/USDT"].close, md.series["SOL/USDT"].close)
    with pytest.raises(DataError, match="the caller says timeframe 1m"):
        load([wrapped], timeframe="1m")
    # gzip detected from content, whatever the extension
    gz = tmp_path / "SOL_USDT-5m.json"
    gz.write_bytes(gzip.compress(json.dumps(ohlcv).encode()))
    md3 = load([gz])
    assert md3.symbols == ("SOL/USDT",) and md3.sources[0].format == "json.gz"


def test_json_row_errors(tmp_path: Path) -> None:
    t0 = 1_704_067_200_000
    bad = [[t0, 1, 2, 0.5, 1.5, 3], [t0 + 300_000, 1, "x", 0.5, 1.5, 3]]
    f = write(tmp_path / "BTC_USDT-5m.json", json.dumps(bad))
    with pytest.raises(DataError, match="row 2: 'x' is not a number"):
        load([f])
    f = write(tmp_path / "BTC_USDT-5m.json", json.dumps([[t0 + 0.5, 1, 2, 0.5, 1.5, 3]]))
    with pytest.raises(DataError, match="not integer milliseconds"):
        load([f])
    f = write(tmp_path / "BTC_USDT-5m.json", "[[1, 2,")
    with pytest.raises(DataError, match="invalid JSON"):
        load([f])


def test_feather_written_here(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    feather = pytest.importorskip("pyarrow.feather")
    t0 = 1_704_067_200_000
    ts = np.array([t0, t0 + 3_600_000, t0 + 3 * 3_600_000], dtype="datetime64[ms]")
    table = pa.table(
        {
            "date": pa.array(ts, type=pa.timestamp("ms", tz="UTC")),
            "open": [1.0, 2.0, 3.0],
            "high": [2.0, 3.0, 4.0],
            "low": [0.5, 1.5, 2.5],
            "close": [1.5, 2.5, 3.5],
            "volume": [1.0, None, 3.0],
        }
    )
    f = tmp_path / "ARB_USDT-1h.feather"
    feather.write_feather(table, f)
    md = load([f])
    assert md.symbols == ("ARB/USDT",) and len(md) == 4
    np.testing.assert_array_equal(md.series["ARB/USDT"].close, [1.5, 2.5, np.nan, 3.5])
    assert np.isnan(md.series["ARB/USDT"].volume[1])
    assert md.gaps == (Gap("ARB/USDT", t0 + 2 * 3_600_000, t0 + 3 * 3_600_000, 1),)


def test_weekly_grid_opens_on_monday(tmp_path: Path) -> None:
    monday = ms("2024-01-01T00:00:00Z")
    week = 7 * 86_400_000
    rows = [f"{monday + i * week},1,2,0.5,1.5,1" for i in range(3)]
    md = load([write(tmp_path / "x_BTC-USDT_1w.csv", HEADER + "\n".join(rows))])
    assert len(md) == 3
    thursday = ms("2024-01-04T00:00:00Z")
    rows = [f"{thursday + i * week},1,2,0.5,1.5,1" for i in range(3)]
    with pytest.raises(DataError, match="not on the 1w grid"):
        load([write(tmp_path / "y_BTC-USDT_1w.csv", HEADER + "\n".join(rows))])


def test_paths_and_selection_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file or folder"):
        load([tmp_path / "missing.csv"])
    with pytest.raises(DataError, match="no candle files in folder"):
        load([tmp_path])
    f = write(
        tmp_path / "x_BTC-USDT_5m.csv", HEADER + "\n".join(candle_rows("2024-01-01T00:00:00Z", 3))
    )
    with pytest.raises(DataError, match="no data for ETH/USDT"):
        load([f], symbols=["BTC/USDT", "ETH/USDT"])
    with pytest.raises(DataError, match="unknown timeframe"):
        load([f], timeframe="5min")
    assert load(str(f)).symbols == ("BTC/USDT",)  # a single path is accepted too
    assert load([f], symbols="BTC/USDT").symbols == ("BTC/USDT",)  # and a single symbol
    empty = write(tmp_path / "y_BTC-USDT_5m.csv", HEADER)
    with pytest.raises(DataError, match="no candles"):
        load([empty])


def test_slice_and_gap_clipping(tmp_path: Path) -> None:
    rows = candle_rows("2024-01-01T00:00:00Z", 12)
    del rows[4:8]  # bars 4..7 missing
    f = write(tmp_path / "x_BTC-USDT_5m.csv", HEADER + "\n".join(rows))
    md = load([f])
    t = md.timestamps
    assert len(md) == 12 and md.gaps == (Gap("BTC/USDT", int(t[4]), int(t[8]), 4),)
    part = md.slice(int(t[2]), int(t[6]))  # inclusive start, exclusive end
    assert list(part.timestamps) == list(t[2:6])
    assert part.gaps == (Gap("BTC/USDT", int(t[4]), int(t[6]), 2),)
    assert len(part.series["BTC/USDT"]) == 4
    assert md.slice(None, None).timestamps.shape == md.timestamps.shape
    tail = md.slice(int(t[5]) + 1, None)  # start between bars: first bar opening at/after it
    assert int(tail.timestamps[0]) == int(t[6])
    assert tail.gaps == (Gap("BTC/USDT", int(t[6]), int(t[8]), 2),)
    with pytest.raises(DataError, match="no bars in"):
        md.slice(int(t[-1]) + 1, None)


def test_market_data_is_read_only(tmp_path: Path) -> None:
    f = write(
        tmp_path / "x_BTC-USDT_5m.csv", HEADER + "\n".join(candle_rows("2024-01-01T00:00:00Z", 3))
    )
    md = load([f])
    with pytest.raises(ValueError):
        md.series["BTC/USDT"].close[0] = 1.0
    with pytest.raises(ValueError):
        md.timestamps[0] = 0
    assert md.spreads == {} and md.regime is None


def test_names() -> None:
    assert parse_symbol_from_filename("XRP_USDT_USDT-1h-futures.json.gz") == ("XRP/USDT:USDT", "1h")
    assert parse_symbol_from_filename("ETH_BTC-5m.json") == ("ETH/BTC", "5m")
    assert parse_symbol_from_filename("ETH_BTC-5m.feather") == ("ETH/BTC", "5m")
    assert parse_symbol_from_filename("bittrex_ADA-BTC_5m.csv") == ("ADA/BTC", "5m")
    assert parse_symbol_from_filename("unknown_XRP-USDT-USDT_8h_mark.csv") == (
        "XRP/USDT:USDT",
        "8h",
    )
    assert parse_symbol_from_filename("bittrex_ETC-BTC_1m_2017-11.csv") == ("ETC/BTC", "1m")
    assert parse_symbol_from_filename("index_BTC-USD_1M.csv") == ("BTC/USD", "1M")
    assert parse_symbol_from_filename("XRP_ETH-trades.feather") is None
    assert parse_symbol_from_filename("pairs.json") is None
    assert timeframe_to_ms("5m") == 300_000 and timeframe_to_ms("1M") == 30 * 86_400_000
