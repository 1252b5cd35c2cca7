"""The audit journal: an append-only record of everything the runtime saw, decided and did.

The journal is the ``journal`` table of the state database (``seq INTEGER PRIMARY KEY``,
``ts``, ``policy_hash``, ``kind``, ``payload`` JSON). SQLite triggers abort every UPDATE and
DELETE of its rows, so nothing written can be changed. Every row carries the hash of the
policy that was running when it was written. :meth:`Journal.export` writes it to a
JSON-lines file and :meth:`Journal.open` reads either form back, so ``policyctl replay``
takes the database or the exported file.

Entry kinds
-----------

Written by the runtime (through :class:`~policyctl.runtime.store.StateStore`):

``state_initial``
    The start of a session (a fresh start *or* a restart after a stop or a crash): the
    state the engine starts from. Payload: ``state`` (``EngineState.to_json()`` text),
    ``mode`` (dry-run | paper | live), ``live_armed``, ``policy`` (name), ``reason``
    (``fresh`` | ``restored``). Replay starts a fresh engine, fresh indicators and this
    state at every ``state_initial``. Written by ``StateStore.journal_initial``.
``warmup``
    Bars fed to the indicators before the first decision of a session (history replayed at
    start-up). Payload: ``bars``: a list, one item per ``source.on_bar`` call, each a
    ``{symbol: bar}`` object. They advance the indicators only, not the state. Written by
    ``StateStore.journal_warmup``; there may be several, in order.
``snapshot``
    One tick's input. Payload: ``snapshot`` (:func:`snapshot_to_dict`) and ``missed``:
    bars the runtime fed to the indicators just before this tick (bars it missed and
    coalesced), one ``{symbol: bar}`` object per ``on_bar`` call; the runtime also marked
    them seen (``state.last_bar_ts``) and replay does the same.
``decision``
    The tick's output, right after its ``snapshot``. Payload: ``now``, ``orders``
    (:func:`order_to_dict`), ``cancels``, ``denials``, ``trading_state``, ``equity``,
    ``events``, ``trace``, ``margins`` and ``state_digest`` (the first 16 hex digits of the
    SHA-256 of the state's JSON after the tick).
``state_set``
    The state was changed or saved outside a tick (operator action, reconciliation,
    shutdown). Payload: ``state`` (JSON text), ``reason``. Replay continues from it.

Written by the store itself, for the audit trail (replay ignores them):

``order``      an order recorded as ``submitting`` just before it is sent (``order``, ``status``);
``order_status`` a status change of an order (``client_id``, ``from``, ``to``, ``exchange_id``,
               ``filled``, ``avg_price``, ``reason``);
``fill``       a fill stored for the first time (:func:`fill_to_dict`);
``note``       anything else worth keeping (``message`` and free data).

Floats that are not finite are written as the strings ``"NaN"``, ``"Infinity"`` and
``"-Infinity"`` (the payloads are strict JSON); the snapshot codecs turn them back into
floats, so a snapshot survives the round trip exactly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sqlite3
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from policyctl.runtime.model import (
    Bar,
    Cancel,
    Event,
    Fill,
    MarketRules,
    OpenOrder,
    OrderRequest,
    Quote,
    Side,
    Snapshot,
)

if TYPE_CHECKING:
    from policyctl.runtime.engine import Decision

STATE_INITIAL = "state_initial"
WARMUP = "warmup"
SNAPSHOT = "snapshot"
DECISION = "decision"
STATE_SET = "state_set"
ORDER = "order"
ORDER_STATUS = "order_status"
FILL = "fill"
NOTE = "note"
KINDS = (STATE_INITIAL, WARMUP, SNAPSHOT, DECISION, STATE_SET, ORDER, ORDER_STATUS, FILL, NOTE)

EXPORT_HEADER = "policyctl-journal"
EXPORT_VERSION = 1
_SQLITE_MAGIC = b"SQLite format 3\x00"


class JournalError(Exception):
    """The journal cannot be read (missing, not a journal, corrupt)."""


@dataclass(frozen=True)
class Entry:
    """An entry to append; ``ts`` defaults to the time of the commit that writes it."""

    kind: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    ts: int | None = None


@dataclass(frozen=True)
class Record:
    """An entry as stored: numbered, stamped and attributed to a policy."""

    seq: int
    ts: int
    policy_hash: str
    kind: str
    payload: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "ts": self.ts, "policy_hash": self.policy_hash, "kind": self.kind,
                "payload": self.payload}


# ---- JSON values -------------------------------------------------------------------------------

_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def enc_float(x: float) -> float | str:
    """A float as strict JSON: finite floats as numbers, the others as ``"NaN"``, ``"Infinity"``..."""
    x = float(x)
    if math.isfinite(x):
        return x
    return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")


def dec_float(v: object) -> float:
    if isinstance(v, str):
        try:
            return _NONFINITE[v]
        except KeyError:
            raise ValueError(f"not a float: {v!r}") from None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ValueError(f"not a float: {v!r}")
    return float(v)


def _opt_float(x: float | None) -> float | str | None:
    return None if x is None else enc_float(x)


def _dec_opt_float(v: object) -> float | None:
    return None if v is None else dec_float(v)


def to_jsonable(x: object) -> Any:
    """Anything the engine puts in traces, events and denials, as strict-JSON-ready values."""
    if x is None or isinstance(x, bool | str):
        return x
    if isinstance(x, Enum):
        return to_jsonable(x.value)
    if isinstance(x, int):
        return int(x)
    if isinstance(x, float):
        return enc_float(x)
    if isinstance(x, Mapping):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [to_jsonable(v) for v in x]
    if isinstance(x, set | frozenset):
        return sorted((to_jsonable(v) for v in x), key=repr)
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: to_jsonable(getattr(x, f.name)) for f in dataclasses.fields(x)}
    item = getattr(x, "item", None)  # numpy scalars
    if callable(item):
        return to_jsonable(item())
    return str(x)


def dumps(payload: object) -> str:
    """Compact, strict JSON (no NaN tokens) of a payload."""
    return json.dumps(to_jsonable(payload), separators=(",", ":"), allow_nan=False, ensure_ascii=False)


# ---- snapshots ---------------------------------------------------------------------------------


def bar_to_dict(b: Bar) -> dict[str, Any]:
    return {"ts": int(b.ts), "open": enc_float(b.open), "high": enc_float(b.high), "low": enc_float(b.low),
            "close": enc_float(b.close), "volume": enc_float(b.volume)}


def bar_from_dict(d: Mapping[str, Any]) -> Bar:
    return Bar(int(d["ts"]), dec_float(d["open"]), dec_float(d["high"]), dec_float(d["low"]),
               dec_float(d["close"]), dec_float(d["volume"]))


def bars_to_dict(bars: Mapping[str, Bar]) -> dict[str, Any]:
    return {s: bar_to_dict(b) for s, b in bars.items()}


def bars_from_dict(d: Mapping[str, Any]) -> dict[str, Bar]:
    return {s: bar_from_dict(b) for s, b in d.items()}


def quote_to_dict(q: Quote) -> dict[str, Any]:
    return {"bid": enc_float(q.bid), "ask": enc_float(q.ask), "last": enc_float(q.last), "ts": int(q.ts)}


def quote_from_dict(d: Mapping[str, Any]) -> Quote:
    return Quote(dec_float(d["bid"]), dec_float(d["ask"]), dec_float(d["last"]), int(d["ts"]))


def market_to_dict(m: MarketRules) -> dict[str, Any]:
    return {"tick_size": enc_float(m.tick_size), "step_size": enc_float(m.step_size),
            "min_qty": enc_float(m.min_qty), "min_notional": enc_float(m.min_notional), "status": m.status}


def market_from_dict(d: Mapping[str, Any]) -> MarketRules:
    return MarketRules(dec_float(d["tick_size"]), dec_float(d["step_size"]), dec_float(d["min_qty"]),
                       dec_float(d["min_notional"]), str(d["status"]))


def open_order_to_dict(o: OpenOrder) -> dict[str, Any]:
    return {"client_id": o.client_id, "symbol": o.symbol, "side": Side(o.side).value, "qty": enc_float(o.qty),
            "price": _opt_float(o.price), "filled": enc_float(o.filled), "created_ms": int(o.created_ms),
            "reduce_only": bool(o.reduce_only)}


def open_order_from_dict(d: Mapping[str, Any]) -> OpenOrder:
    return OpenOrder(str(d["client_id"]), str(d["symbol"]), Side(d["side"]), dec_float(d["qty"]),
                     _dec_opt_float(d["price"]), dec_float(d["filled"]), int(d["created_ms"]),
                     bool(d["reduce_only"]))


def fill_to_dict(f: Fill) -> dict[str, Any]:
    return {"id": f.id, "client_id": f.client_id, "symbol": f.symbol, "side": Side(f.side).value,
            "qty": enc_float(f.qty), "price": enc_float(f.price), "fee": enc_float(f.fee), "ts": int(f.ts),
            "kind": f.kind}


def fill_from_dict(d: Mapping[str, Any]) -> Fill:
    return Fill(str(d["id"]), str(d["client_id"]), str(d["symbol"]), Side(d["side"]), dec_float(d["qty"]),
                dec_float(d["price"]), dec_float(d["fee"]), int(d["ts"]), str(d.get("kind", "")))


def snapshot_to_dict(s: Snapshot) -> dict[str, Any]:
    return {
        "now": int(s.now),
        "bars": bars_to_dict(s.bars),
        "quotes": {k: quote_to_dict(q) for k, q in s.quotes.items()},
        "cash": _opt_float(s.cash),
        "balances": {k: enc_float(v) for k, v in s.balances.items()},
        "open_orders": [open_order_to_dict(o) for o in s.open_orders],
        "fills": [fill_to_dict(f) for f in s.fills],
        "markets": {k: market_to_dict(m) for k, m in s.markets.items()},
        "api_errors": [int(t) for t in s.api_errors],
        "kill_switch": bool(s.kill_switch),
        "new_bar": bool(s.new_bar),
        "rejections": [[cid, reason] for cid, reason in s.rejections],
    }


def snapshot_from_dict(d: Mapping[str, Any]) -> Snapshot:
    return Snapshot(
        now=int(d["now"]),
        bars=bars_from_dict(d.get("bars", {})),
        quotes={k: quote_from_dict(q) for k, q in d.get("quotes", {}).items()},
        cash=_dec_opt_float(d.get("cash")),
        balances={k: dec_float(v) for k, v in d.get("balances", {}).items()},
        open_orders=tuple(open_order_from_dict(o) for o in d.get("open_orders", ())),
        fills=tuple(fill_from_dict(f) for f in d.get("fills", ())),
        markets={k: market_from_dict(m) for k, m in d.get("markets", {}).items()},
        api_errors=tuple(int(t) for t in d.get("api_errors", ())),
        kill_switch=bool(d.get("kill_switch", False)),
        new_bar=bool(d.get("new_bar", True)),
        rejections=tuple((str(cid), str(reason)) for cid, reason in d.get("rejections", ())),
    )


def snapshot_to_json(s: Snapshot) -> str:
    """A snapshot as strict JSON; :func:`snapshot_from_json` gives back an equal snapshot."""
    return json.dumps(snapshot_to_dict(s), separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def snapshot_from_json(text: str) -> Snapshot:
    return snapshot_from_dict(json.loads(text))


# ---- decisions ---------------------------------------------------------------------------------


def order_to_dict(o: OrderRequest) -> dict[str, Any]:
    return {"client_id": o.client_id, "symbol": o.symbol, "side": Side(o.side).value, "qty": o.qty,
            "price": o.price, "kind": o.kind, "rule": o.rule, "reduce_only": bool(o.reduce_only),
            "ref_price": enc_float(o.ref_price), "stop": _opt_float(o.stop), "take": _opt_float(o.take),
            "strategy": o.strategy, "spend": _opt_float(o.spend)}


def order_from_dict(d: Mapping[str, Any]) -> OrderRequest:
    return OrderRequest(str(d["client_id"]), str(d["symbol"]), Side(d["side"]), str(d["qty"]),
                        None if d.get("price") is None else str(d["price"]), str(d["kind"]), str(d["rule"]),
                        bool(d["reduce_only"]), dec_float(d["ref_price"]), _dec_opt_float(d.get("stop")),
                        _dec_opt_float(d.get("take")), d.get("strategy"), _dec_opt_float(d.get("spend")))


def cancel_to_dict(c: Cancel) -> dict[str, Any]:
    return {"client_id": c.client_id, "symbol": c.symbol, "reason": c.reason}


def event_to_dict(e: Event) -> dict[str, Any]:
    return {"kind": e.kind, "message": e.message, "data": to_jsonable(e.data)}


def state_digest(state_json: str) -> str:
    """A short fingerprint of a state's JSON, to compare states without storing each one."""
    return hashlib.sha256(state_json.encode()).hexdigest()[:16]


def decision_to_dict(d: Decision, state_json: str | None = None) -> dict[str, Any]:
    """A decision as the ``decision`` entry's payload (``state_json``: the state after the tick,
    if already serialized)."""
    state_json = state_json if state_json is not None else d.state.to_json()
    return {
        "now": int(d.now),
        "orders": [order_to_dict(o) for o in d.orders],
        "cancels": [cancel_to_dict(c) for c in d.cancels],
        "denials": to_jsonable(d.denials),
        "trading_state": to_jsonable(d.trading_state),
        "equity": enc_float(d.equity),
        "margins": to_jsonable(d.margins),
        "events": [event_to_dict(e) for e in d.events],
        "trace": to_jsonable(d.trace),
        "state_digest": state_digest(state_json),
    }


# ---- entries -----------------------------------------------------------------------------------


def state_initial_entry(state_json: str, *, mode: str, live_armed: bool, policy: str, reason: str) -> Entry:
    return Entry(STATE_INITIAL, {"state": state_json, "mode": mode, "live_armed": live_armed, "policy": policy,
                                 "reason": reason})


def warmup_entry(calls: Iterable[Mapping[str, Bar]]) -> Entry:
    return Entry(WARMUP, {"bars": [bars_to_dict(c) for c in calls]})


def snapshot_entry(snap: Snapshot, missed: Iterable[Mapping[str, Bar]] = ()) -> Entry:
    return Entry(SNAPSHOT, {"snapshot": snapshot_to_dict(snap), "missed": [bars_to_dict(c) for c in missed]})


def decision_entry(d: Decision, state_json: str | None = None) -> Entry:
    return Entry(DECISION, decision_to_dict(d, state_json))


def state_set_entry(state_json: str, reason: str) -> Entry:
    return Entry(STATE_SET, {"state": state_json, "reason": reason})


def note_entry(message: str, **data: object) -> Entry:
    return Entry(NOTE, {"message": message, **data})


# ---- the journal -------------------------------------------------------------------------------

SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ts INTEGER NOT NULL,
    policy_hash TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL CHECK (json_valid(payload))
);
CREATE INDEX IF NOT EXISTS journal_kind ON journal (kind, seq);
CREATE TRIGGER IF NOT EXISTS journal_no_update BEFORE UPDATE ON journal
BEGIN SELECT RAISE(ABORT, 'the journal is append-only: rows cannot be updated'); END;
CREATE TRIGGER IF NOT EXISTS journal_no_delete BEFORE DELETE ON journal
BEGIN SELECT RAISE(ABORT, 'the journal is append-only: rows cannot be deleted'); END;
"""


def append(conn: sqlite3.Connection, entries: Iterable[Entry], now_ms: int, policy_hash: str) -> int:
    """Append entries inside the caller's transaction; returns the last sequence number (0: none)."""
    last = 0
    for e in entries:
        if e.kind not in KINDS:
            raise ValueError(f"unknown journal entry kind {e.kind!r} (known: {', '.join(KINDS)})")
        cur = conn.execute("INSERT INTO journal (ts, policy_hash, kind, payload) VALUES (?, ?, ?, ?)",
                           (int(now_ms if e.ts is None else e.ts), policy_hash, e.kind, dumps(e.payload)))
        last = int(cur.lastrowid or 0)
    return last


class Journal:
    """Reads a journal: the ``journal`` table of a state database, or an exported JSON-lines file."""

    def __init__(self, source: sqlite3.Connection | Path, *, owns: bool = False):
        self._conn = source if isinstance(source, sqlite3.Connection) else None
        self._file = None if isinstance(source, sqlite3.Connection) else Path(source)
        self._owns = owns

    @classmethod
    def open(cls, path: str | Path) -> Journal:
        """Open a state database (read-only, while the runtime may still be writing) or an export."""
        p = Path(path)
        try:
            with p.open("rb") as fh:
                head = fh.read(len(_SQLITE_MAGIC))
        except OSError as e:
            raise JournalError(f"cannot read {p}: {e.strerror or e}") from None
        if head != _SQLITE_MAGIC:
            return cls(p)
        try:
            conn = sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
            conn.execute("SELECT 1 FROM journal LIMIT 1").fetchall()
        except sqlite3.Error as e:
            raise JournalError(f"{p} has no readable journal: {e}") from None
        return cls(conn, owns=True)

    def entries(self, kinds: Iterable[str] | None = None, since_seq: int = 0) -> Iterator[Record]:
        """The entries after ``since_seq``, in order, optionally of some kinds only."""
        wanted = None if kinds is None else tuple(kinds)
        if self._conn is not None:
            sql = "SELECT seq, ts, policy_hash, kind, payload FROM journal WHERE seq > ?"
            args: list[object] = [since_seq]
            if wanted is not None:
                sql += f" AND kind IN ({', '.join('?' * len(wanted))})"
                args += wanted
            for seq, ts, ph, kind, payload in self._conn.execute(sql + " ORDER BY seq", args):
                yield Record(int(seq), int(ts), ph, kind, json.loads(payload))
            return
        assert self._file is not None
        for r in self._read_file():
            if r.seq > since_seq and (wanted is None or r.kind in wanted):
                yield r

    def last(self, kinds: Iterable[str], n: int) -> list[Record]:
        """The newest ``n`` entries of some kinds, oldest first (read from the end: the cost does
        not grow with the journal)."""
        wanted = tuple(kinds)
        if n <= 0:
            return []
        if self._conn is not None:
            marks = ", ".join("?" * len(wanted))
            sql = (f"SELECT seq, ts, policy_hash, kind, payload FROM journal WHERE kind IN ({marks}) "
                   "ORDER BY seq DESC LIMIT ?")
            rows = self._conn.execute(sql, [*wanted, n]).fetchall()
            return [Record(int(seq), int(ts), ph, kind, json.loads(payload)) for seq, ts, ph, kind, payload in
                    reversed(rows)]
        return list(deque(self.entries(kinds=wanted), maxlen=n))

    def _read_file(self) -> Iterator[Record]:
        assert self._file is not None
        try:
            fh = self._file.open(encoding="utf-8")
        except OSError as e:
            raise JournalError(f"cannot read {self._file}: {e.strerror or e}") from None
        with fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    d = json.loads(line)
                    if n == 1 and d.get("format") == EXPORT_HEADER:
                        if int(d.get("version", 0)) > EXPORT_VERSION:
                            raise JournalError(f"{self._file}: journal export version {d['version']} is newer "
                                               "than this policyctl understands")
                        continue
                    yield Record(int(d["seq"]), int(d["ts"]), str(d["policy_hash"]), str(d["kind"]),
                                 dict(d["payload"]))
                except JournalError:
                    raise
                except (ValueError, KeyError, TypeError, AttributeError) as e:
                    raise JournalError(f"{self._file}:{n}: not a journal line ({type(e).__name__}: {e})") from None

    def export(self, path: str | Path) -> int:
        """Write the journal to a JSON-lines file (a header line, then one entry per line)."""
        p = Path(path)
        tmp = p.with_name(p.name + ".tmp")
        n = 0
        with tmp.open("w", encoding="utf-8") as fh:
            fh.write(json.dumps({"format": EXPORT_HEADER, "version": EXPORT_VERSION}) + "\n")
            for r in self.entries():
                fh.write(json.dumps(r.to_dict(), separators=(",", ":"), allow_nan=False, ensure_ascii=False))
                fh.write("\n")
                n += 1
        tmp.replace(p)
        return n

    def close(self) -> None:
        if self._conn is not None and self._owns:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
