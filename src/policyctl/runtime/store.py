"""Durable state: the engine state, the orders, the fills and the journal in one SQLite file.

:class:`StateStore` is what makes "never place an order twice, never lose a fill" hold
across a ``kill -9``:

* **write-ahead**: :meth:`StateStore.commit_tick` saves the state the engine produced, records
  every order about to be sent as ``submitting`` and appends the tick's journal entries in
  ONE transaction, *before* anything is sent. After a crash each order is either unknown to
  the store (it was never sent) or ``submitting`` (it may have been sent: look it up by its
  client id at the exchange; never send it again);
* **fills once**: fills are keyed by their exchange id (``INSERT OR IGNORE``) and remember
  whether a committed tick has booked them, so a fill stored just before a crash is handed
  to the engine again after the restart (:meth:`StateStore.record_fills`);
* the database runs in WAL mode with ``synchronous=FULL`` for every commit that matters
  (state, orders, fills, journal) and ``NORMAL`` for equity marks;
* **single instance**: an exclusive ``flock`` on ``PATH.lock`` is held for the life of the
  store. A second store on the same path (this process or another) raises
  :class:`StoreLocked` naming the pid written in the lock file. The kernel drops the lock
  when its holder dies, however it dies.

Schema (version 1, in the ``meta`` table):

``meta``    key TEXT PK, value TEXT: ``schema_version``, ``policy_name``, ``policy_hash``
``state``   one row (id = 1): ``state`` (``EngineState.to_json()``), ``policy_hash``, ``tick_ms``
``orders``  client_id PK, symbol, side, qty (decimal text, as sent), price, kind, rule,
            reduce_only, status, exchange_id, filled, avg_price, created_ms, updated_ms,
            reason, policy_hash, request (the full ``OrderRequest`` as JSON)
``fills``   id PK, client_id, symbol, side, qty, price, fee, ts, kind, applied (0/1: booked by
            a committed tick)
``marks``   ts PK, equity (equity marks for metrics)
``journal`` see :mod:`policyctl.runtime.journal` (append-only)

Breaker trips are part of the state JSON.

Order statuses and the transitions :meth:`StateStore.mark_order` allows (anything else is
logged and ignored; the same status again just updates the figures)::

    submitting       -> unknown, open, partially_filled, filled, canceled, expired, rejected, lost
    unknown          -> open, partially_filled, filled, canceled, expired, rejected, lost
    lost             -> open, partially_filled, filled, canceled, expired, rejected
    open             -> partially_filled, filled, canceled, expired
    partially_filled -> filled, canceled, expired
    filled, canceled, expired, rejected: final

``submitting``: recorded, maybe not sent yet; ``unknown``: sent, the answer was lost (look
it up); ``lost``: the exchange has never seen it (it did not leave before a crash), though
it may still turn up. The adapter's ``new`` is taken as ``open``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger

from policyctl.runtime import journal as jr
from policyctl.runtime.model import Bar, Fill, OrderRequest, Side, Snapshot
from policyctl.runtime.state import EngineState

if TYPE_CHECKING:
    from policyctl.runtime.engine import Decision

SCHEMA_VERSION = 1

SUBMITTING, UNKNOWN, OPEN, PARTIALLY_FILLED, FILLED = "submitting", "unknown", "open", "partially_filled", "filled"
CANCELED, EXPIRED, REJECTED, LOST = "canceled", "expired", "rejected", "lost"
ORDER_STATUSES = (SUBMITTING, UNKNOWN, OPEN, PARTIALLY_FILLED, FILLED, CANCELED, EXPIRED, REJECTED, LOST)
FINAL = frozenset({FILLED, CANCELED, EXPIRED, REJECTED})
ACTIVE = (SUBMITTING, UNKNOWN, OPEN, PARTIALLY_FILLED)  # orders that may still be working
TRANSITIONS: dict[str, frozenset[str]] = {
    SUBMITTING: frozenset({UNKNOWN, OPEN, PARTIALLY_FILLED, FILLED, CANCELED, EXPIRED, REJECTED, LOST}),
    UNKNOWN: frozenset({OPEN, PARTIALLY_FILLED, FILLED, CANCELED, EXPIRED, REJECTED, LOST}),
    LOST: frozenset({OPEN, PARTIALLY_FILLED, FILLED, CANCELED, EXPIRED, REJECTED}),
    OPEN: frozenset({PARTIALLY_FILLED, FILLED, CANCELED, EXPIRED}),
    PARTIALLY_FILLED: frozenset({FILLED, CANCELED, EXPIRED}),
    FILLED: frozenset(),
    CANCELED: frozenset(),
    EXPIRED: frozenset(),
    REJECTED: frozenset(),
}
ALIASES = {"new": OPEN}

_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    state TEXT NOT NULL,
    policy_hash TEXT NOT NULL,
    tick_ms INTEGER NOT NULL
);
CREATE TABLE orders (
    client_id TEXT PRIMARY KEY,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
    qty TEXT NOT NULL,
    price TEXT,
    kind TEXT NOT NULL,
    rule TEXT NOT NULL,
    reduce_only INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('submitting', 'unknown', 'open', 'partially_filled', 'filled',
                                           'canceled', 'expired', 'rejected', 'lost')),
    exchange_id TEXT,
    filled REAL NOT NULL DEFAULT 0,
    avg_price REAL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    reason TEXT,
    policy_hash TEXT NOT NULL,
    request TEXT NOT NULL
);
CREATE INDEX orders_status ON orders (status);
CREATE TABLE fills (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    qty REAL NOT NULL,
    price REAL NOT NULL,
    fee REAL NOT NULL,
    ts INTEGER NOT NULL,
    kind TEXT NOT NULL DEFAULT '',
    applied INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX fills_ts ON fills (ts);
CREATE INDEX fills_unapplied ON fills (applied) WHERE applied = 0;
CREATE TABLE marks (ts INTEGER PRIMARY KEY, equity REAL NOT NULL);
""" + jr.SCHEMA

MIGRATIONS = {1: _V1}  # version -> the script that brings version - 1 to it


class StoreError(Exception):
    """The state database cannot be used (newer schema, another policy's store, corrupt)."""


class StoreLocked(StoreError):
    """Another live store (in this process or another) holds the database."""

    def __init__(self, path: str, pid: int | None):
        self.path, self.pid = path, pid
        who = f"process {pid}" if pid is not None else "another process (pid unknown)"
        super().__init__(f"{path} is in use by {who}: only one runtime may run on a state database "
                         f"(lock file {path}.lock)")


@dataclass(frozen=True, slots=True)
class OrderRecord:
    client_id: str
    symbol: str
    side: str
    qty: str
    price: str | None
    kind: str
    rule: str
    reduce_only: bool
    status: str
    exchange_id: str | None
    filled: float
    avg_price: float | None
    created_ms: int
    updated_ms: int
    reason: str | None
    policy_hash: str

    @property
    def final(self) -> bool:
        return self.status in FINAL


@dataclass(frozen=True, slots=True)
class StateInfo:
    policy_hash: str
    tick_ms: int


_ORDER_COLS = ("client_id, symbol, side, qty, price, kind, rule, reduce_only, status, exchange_id, filled, "
               "avg_price, created_ms, updated_ms, reason, policy_hash")


def _order(row: Sequence[Any]) -> OrderRecord:
    (cid, sym, side, qty, price, kind, rule, ro, status, xid, filled, avg, created, updated, reason, ph) = row
    return OrderRecord(cid, sym, side, qty, price, kind, rule, bool(ro), status, xid, float(filled),
                       None if avg is None else float(avg), int(created), int(updated), reason, ph)


class _Lock:
    """An exclusive, non-blocking ``flock`` on a file that holds the holder's pid."""

    def __init__(self, path: str):
        self.path = path
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            pid = _read_pid(fd)
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise StoreLocked(path.removesuffix(".lock"), pid) from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        os.fsync(fd)
        self.fd: int | None = fd

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)  # the pid of a process that no longer holds it means nothing
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


class StateStore:
    """The runtime's durable state. One per database; see the module docstring."""

    def __init__(self, path: str | Path, policy_name: str, policy_hash: str):
        self.path = Path(path)
        self.policy_name = policy_name
        self.policy_hash = policy_hash
        self._mutex = threading.RLock()
        self._lock = _Lock(str(self.path) + ".lock")  # before touching the database
        try:
            self._db: sqlite3.Connection | None = sqlite3.connect(str(self.path), isolation_level=None,
                                                                  check_same_thread=False)
            self._sync_full: bool | None = None
            mode = self._c.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"{self.path}: cannot switch the database to WAL mode (got {mode})")
            self._c.execute("PRAGMA busy_timeout=5000")
            self._migrate()
        except sqlite3.DatabaseError as e:
            self._abort()
            raise StoreError(f"{self.path}: {e}") from e
        except BaseException:
            self._abort()
            raise
        info = self.state_info()
        self.stored_policy_hash: str | None = info.policy_hash if info is not None else None

    def _abort(self) -> None:
        db, self._db = getattr(self, "_db", None), None
        if db is not None:
            with contextlib.suppress(Exception):
                db.close()
        self._lock.release()

    @property
    def _c(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError(f"{self.path}: the store is closed")
        return self._db

    # ---- schema ------------------------------------------------------------------------------
    def _migrate(self) -> None:
        with self._tx() as c:
            has_meta = c.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
            version = 0
            if has_meta:
                row = c.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
                version = int(row[0]) if row else 0
            elif c.execute("SELECT count(*) FROM sqlite_master WHERE type='table'").fetchone()[0]:
                raise StoreError(f"{self.path} is not a policyctl state database")
            if version > SCHEMA_VERSION:
                raise StoreError(f"{self.path} has schema version {version}; this policyctl knows up to "
                                 f"{SCHEMA_VERSION}: upgrade policyctl")
            for v in range(version + 1, SCHEMA_VERSION + 1):
                for stmt in _statements(MIGRATIONS[v]):
                    c.execute(stmt)
                c.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(v),))
            row = c.execute("SELECT value FROM meta WHERE key='policy_name'").fetchone()
            if row is not None and row[0] != self.policy_name:
                raise StoreError(f"{self.path} holds the state of policy `{row[0]}`, not `{self.policy_name}`: "
                                 "use another state database")
            c.execute("INSERT OR REPLACE INTO meta VALUES ('policy_name', ?)", (self.policy_name,))
            c.execute("INSERT OR REPLACE INTO meta VALUES ('policy_hash', ?)", (self.policy_hash,))

    def schema_version(self) -> int:
        with self._mutex:
            return int(self._c.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0])

    # ---- transactions ------------------------------------------------------------------------
    @contextlib.contextmanager
    def _tx(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        with self._mutex:
            c = self._c
            if self._sync_full is not durable:
                c.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
                self._sync_full = durable
            c.execute("BEGIN IMMEDIATE")
            try:
                yield c
            except BaseException:
                c.execute("ROLLBACK")
                raise
            c.execute("COMMIT")

    def _put_state(self, c: sqlite3.Connection, state_json: str, now_ms: int) -> None:
        c.execute("INSERT INTO state (id, state, policy_hash, tick_ms) VALUES (1, ?, ?, ?) "
                  "ON CONFLICT (id) DO UPDATE SET state=excluded.state, policy_hash=excluded.policy_hash, "
                  "tick_ms=excluded.tick_ms", (state_json, self.policy_hash, int(now_ms)))

    # ---- state -------------------------------------------------------------------------------
    def load_state(self) -> EngineState | None:
        """The last committed state, or None for a new database."""
        with self._mutex:
            row = self._c.execute("SELECT state FROM state WHERE id = 1").fetchone()
        return None if row is None else EngineState.from_json(row[0])

    def state_info(self) -> StateInfo | None:
        """Which policy saved the stored state, and when (None for a new database)."""
        with self._mutex:
            row = self._c.execute("SELECT policy_hash, tick_ms FROM state WHERE id = 1").fetchone()
        return None if row is None else StateInfo(row[0], int(row[1]))

    def journal_initial(self, state: EngineState, now_ms: int, *, mode: str = "dry-run", live_armed: bool = False,
                        reason: str | None = None) -> int:
        """Start a session: save ``state`` and journal it as ``state_initial``. Call it at every
        start (fresh or restored), before the warm-up and the first tick. Returns its seq."""
        text = state.to_json()
        reason = reason or ("fresh" if self.stored_policy_hash is None else "restored")
        with self._tx() as c:
            self._put_state(c, text, now_ms)
            seq = jr.append(c, [jr.state_initial_entry(text, mode=mode, live_armed=live_armed,
                                                       policy=self.policy_name, reason=reason)],
                            now_ms, self.policy_hash)
        self.stored_policy_hash = self.policy_hash
        return seq

    def journal_warmup(self, calls: Iterable[Mapping[str, Bar]], now_ms: int) -> int:
        """Journal the bars fed to the indicators at start-up, one mapping per ``source.on_bar`` call."""
        return self.append([jr.warmup_entry(calls)], now_ms)

    def save_state(self, state: EngineState, now_ms: int, reason: str = "saved outside a tick") -> None:
        """Save a state changed outside a tick (operator reset, shutdown); journaled as ``state_set``."""
        text = state.to_json()
        with self._tx() as c:
            self._put_state(c, text, now_ms)
            jr.append(c, [jr.state_set_entry(text, reason)], now_ms, self.policy_hash)

    # ---- the write-ahead commit ----------------------------------------------------------------
    def commit(self, state: EngineState, now_ms: int, orders_to_submit: Sequence[OrderRequest],
               journal_entries: Iterable[jr.Entry] = (), *, fills: Iterable[Fill] = (),
               equity: float | None = None, state_json: str | None = None) -> list[OrderRequest]:
        """ONE transaction: the new state, ``orders_to_submit`` as ``submitting`` (each journaled
        as ``order``), the journal entries, the ``fills`` the state has booked (stored once and
        marked applied) and an equity mark. Call it BEFORE sending anything.

        Returns the orders to send: those not already in the store (an order id the store
        knows was sent, or may have been, before; it is never sent again)."""
        text = state_json if state_json is not None else state.to_json()
        fresh: list[OrderRequest] = []
        with self._tx() as c:
            self._put_state(c, text, now_ms)
            jr.append(c, journal_entries, now_ms, self.policy_hash)
            for f in fills:
                self._insert_fill(c, f, applied=True, now_ms=now_ms)
            for o in orders_to_submit:
                cur = c.execute(
                    f"INSERT OR IGNORE INTO orders ({_ORDER_COLS}, request) VALUES "
                    "(?, ?, ?, ?, ?, ?, ?, ?, 'submitting', NULL, 0, NULL, ?, ?, NULL, ?, ?)",
                    (o.client_id, o.symbol, Side(o.side).value, o.qty, o.price, o.kind, o.rule, int(o.reduce_only),
                     int(now_ms), int(now_ms), self.policy_hash, jr.dumps(jr.order_to_dict(o))))
                if cur.rowcount:
                    fresh.append(o)
                    jr.append(c, [jr.Entry(jr.ORDER, {"order": jr.order_to_dict(o), "status": SUBMITTING})],
                              now_ms, self.policy_hash)
                else:
                    logger.warning(f"order {o.client_id} is already in the store: it is not sent again")
                    jr.append(c, [jr.note_entry("duplicate order not sent", client_id=o.client_id)],
                              now_ms, self.policy_hash)
            if equity is not None and math.isfinite(equity):
                c.execute("INSERT OR REPLACE INTO marks (ts, equity) VALUES (?, ?)", (int(now_ms), float(equity)))
        return fresh

    def commit_tick(self, state: EngineState, snap: Snapshot, decision: Decision,
                    orders_to_submit: Sequence[OrderRequest], *, missed: Iterable[Mapping[str, Bar]] = (),
                    extra: Iterable[jr.Entry] = ()) -> list[OrderRequest]:
        """The write-ahead of one tick, journaled for replay: :meth:`commit` with the
        ``snapshot`` and ``decision`` entries (and ``extra`` after them), the snapshot's fills
        marked booked, and the decision's equity as a mark. ``missed``: bars fed to the
        indicators before this tick (marked seen in the state), one mapping per ``on_bar``
        call. ``decision`` is the :class:`~policyctl.runtime.engine.Decision` of ``snap``.
        Returns the orders to send (see :meth:`commit`)."""
        text = state.to_json()
        entries = [jr.snapshot_entry(snap, missed), jr.decision_entry(decision, text), *extra]
        return self.commit(state, snap.now, orders_to_submit, entries, fills=snap.fills,
                           equity=decision.equity, state_json=text)

    def append(self, entries: Iterable[jr.Entry], now_ms: int) -> int:
        """Append journal entries on their own (notes, warm-up); returns the last seq."""
        with self._tx() as c:
            return jr.append(c, entries, now_ms, self.policy_hash)

    # ---- orders --------------------------------------------------------------------------------
    def mark_order(self, client_id: str, status: str, *, exchange_id: str | None = None,
                   filled: float | None = None, avg_price: float | None = None, reason: str | None = None,
                   now_ms: int) -> bool:
        """Move an order to ``status`` (see the transitions in the module docstring). An illegal
        transition or an unknown order is logged and ignored: returns False."""
        status = ALIASES.get(status, status)
        if status not in TRANSITIONS:
            logger.warning(f"order {client_id}: unknown status {status!r} ignored")
            return False
        with self._tx() as c:
            row = c.execute(f"SELECT {_ORDER_COLS} FROM orders WHERE client_id = ?", (client_id,)).fetchone()
            if row is None:
                logger.warning(f"order {client_id} is not in the store: status {status} ignored")
                return False
            o = _order(row)
            if status != o.status and status not in TRANSITIONS[o.status]:
                logger.warning(f"order {client_id}: illegal transition {o.status} -> {status} ignored")
                return False
            new_filled = o.filled
            if filled is not None and math.isfinite(filled):
                if filled + 1e-12 < o.filled:
                    logger.warning(f"order {client_id}: filled {filled} is less than the {o.filled} already known: "
                                   "kept")
                else:
                    new_filled = float(filled)
            new_avg = o.avg_price if avg_price is None or not math.isfinite(avg_price) else float(avg_price)
            new_xid = exchange_id if exchange_id is not None else o.exchange_id
            new_reason = reason if reason is not None else o.reason
            if (status, new_filled, new_avg, new_xid, new_reason) == (o.status, o.filled, o.avg_price,
                                                                      o.exchange_id, o.reason):
                return True  # nothing new
            c.execute("UPDATE orders SET status=?, exchange_id=?, filled=?, avg_price=?, reason=?, updated_ms=? "
                      "WHERE client_id=?", (status, new_xid, new_filled, new_avg, new_reason, int(now_ms), client_id))
            jr.append(c, [jr.Entry(jr.ORDER_STATUS, {
                "client_id": client_id, "from": o.status, "to": status, "exchange_id": new_xid,
                "filled": new_filled, "avg_price": new_avg, "reason": reason})], now_ms, self.policy_hash)
        return True

    def order(self, client_id: str) -> OrderRecord | None:
        with self._mutex:
            row = self._c.execute(f"SELECT {_ORDER_COLS} FROM orders WHERE client_id = ?",
                                     (client_id,)).fetchone()
        return None if row is None else _order(row)

    def order_request(self, client_id: str) -> OrderRequest | None:
        """The order exactly as it was decided and recorded."""
        with self._mutex:
            row = self._c.execute("SELECT request FROM orders WHERE client_id = ?", (client_id,)).fetchone()
        return None if row is None else jr.order_from_dict(json.loads(row[0]))

    def orders_in(self, statuses: Iterable[str]) -> list[OrderRecord]:
        """The orders in any of ``statuses``, oldest first."""
        wanted = tuple(ALIASES.get(s, s) for s in statuses)
        if not wanted:
            return []
        with self._mutex:
            rows = self._c.execute(
                f"SELECT {_ORDER_COLS} FROM orders WHERE status IN ({', '.join('?' * len(wanted))}) "
                "ORDER BY created_ms, client_id", wanted).fetchall()
        return [_order(r) for r in rows]

    # ---- fills ---------------------------------------------------------------------------------
    def _insert_fill(self, c: sqlite3.Connection, f: Fill, applied: bool, now_ms: int) -> bool:
        cur = c.execute("INSERT OR IGNORE INTO fills (id, client_id, symbol, side, qty, price, fee, ts, kind, applied) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (f.id, f.client_id, f.symbol, Side(f.side).value, float(f.qty), float(f.price), float(f.fee),
                         int(f.ts), f.kind, int(applied)))
        if cur.rowcount:
            jr.append(c, [jr.Entry(jr.FILL, jr.fill_to_dict(f))], now_ms, self.policy_hash)
            return True
        if applied:
            c.execute("UPDATE fills SET applied = 1 WHERE id = ? AND applied = 0", (f.id,))
        return False

    def adopt_fills(self, fills: Iterable[Fill], now_ms: int) -> int:
        """Fills made before a fresh state, whose effect that state took from the balances: stored
        as booked, so they are never handed to the engine (booked twice). Returns how many."""
        with self._tx() as c:
            return sum(self._insert_fill(c, f, applied=True, now_ms=now_ms) for f in fills)

    def record_fills(self, fills: Iterable[Fill], *, now_ms: int | None = None) -> list[Fill]:
        """Store fills (each once, by id) and return those the engine has not booked yet: the new
        ones, and any stored before but not booked by a committed tick (a crash in between).
        Hand them to the engine in the next snapshot; :meth:`commit_tick` marks them booked."""
        fills = list(fills)
        with self._tx() as c:
            for f in fills:
                self._insert_fill(c, f, applied=False, now_ms=now_ms if now_ms is not None else int(f.ts))
            rows = c.execute("SELECT id, client_id, symbol, side, qty, price, fee, ts, kind FROM fills "
                             "WHERE applied = 0 ORDER BY ts, id").fetchall()
        return [_fill(r) for r in rows]

    def fills(self, since_ts: int = 0) -> list[Fill]:
        with self._mutex:
            rows = self._c.execute("SELECT id, client_id, symbol, side, qty, price, fee, ts, kind FROM fills "
                                      "WHERE ts >= ? ORDER BY ts, id", (since_ts,)).fetchall()
        return [_fill(r) for r in rows]

    # ---- equity marks ----------------------------------------------------------------------------
    def add_marks(self, marks: Iterable[tuple[int, float]]) -> None:
        with self._tx(durable=False) as c:
            c.executemany("INSERT OR REPLACE INTO marks (ts, equity) VALUES (?, ?)",
                          [(int(t), float(e)) for t, e in marks if math.isfinite(e)])

    def marks(self, since_ts: int = 0) -> list[tuple[int, float]]:
        with self._mutex:
            rows = self._c.execute("SELECT ts, equity FROM marks WHERE ts >= ? ORDER BY ts", (since_ts,)).fetchall()
        return [(int(t), float(e)) for t, e in rows]

    # ---- the journal -----------------------------------------------------------------------------
    def journal(self) -> jr.Journal:
        """A reader of this store's journal (its own read-only connection; close it after use)."""
        return jr.Journal.open(self.path)

    # ---- life ------------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the database and release the lock (idempotent)."""
        with self._mutex:
            db, self._db = self._db, None
            if db is not None:
                db.close()
            self._lock.release()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fill(r: Sequence[Any]) -> Fill:
    fid, cid, sym, side, qty, price, fee, ts, kind = r
    return Fill(fid, cid, sym, Side(side), float(qty), float(price), float(fee), int(ts), kind)


def _statements(script: str) -> list[str]:
    """Split a schema script into statements (triggers keep their inner semicolons)."""
    out, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out
