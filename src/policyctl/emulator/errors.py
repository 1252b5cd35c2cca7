"""Binance error codes and messages, worded exactly as the spot REST API words them.

Every rejection in the emulator raises :class:`BinanceError`; the HTTP layer turns it into
Binance's ``{"code": ..., "msg": ...}`` body with the matching HTTP status.  Source of the
wording: Binance's public spot API error documentation (``errors.md``) and responses seen
in the wild (``{"code":-1013,"msg":"Market is closed."}`` for a halted symbol).
"""

from __future__ import annotations


class BinanceError(Exception):
    """A rejection the emulator answers with Binance's error JSON."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(f"{code} {msg}")
        self.code = code
        self.msg = msg
        self.status = status

    def body(self) -> dict[str, object]:
        return {"code": self.code, "msg": self.msg}


# -2010 NEW_ORDER_REJECTED / -2011 CANCEL_REJECTED messages (from the matching engine).
DUPLICATE_ORDER = "Duplicate order sent."
INSUFFICIENT_BALANCE = "Account has insufficient balance for requested action."
UNKNOWN_ORDER = "Unknown order sent."
WOULD_MATCH = "Order would immediately match and take."
MARKET_CLOSED = "Market is closed."


def new_order_rejected(msg: str) -> BinanceError:
    return BinanceError(-2010, msg)


def cancel_rejected(msg: str = UNKNOWN_ORDER) -> BinanceError:
    return BinanceError(-2011, msg)


def filter_failure(filter_type: str) -> BinanceError:
    """``-1013 Filter failure: LOT_SIZE`` and friends."""
    return BinanceError(-1013, f"Filter failure: {filter_type}")


def market_closed() -> BinanceError:
    return BinanceError(-1013, MARKET_CLOSED)


def no_such_order() -> BinanceError:
    return BinanceError(-2013, "Order does not exist.")


def invalid_symbol() -> BinanceError:
    return BinanceError(-1121, "Invalid symbol.")


def invalid_interval() -> BinanceError:
    return BinanceError(-1120, "Invalid interval.")


def mandatory_param(name: str) -> BinanceError:
    return BinanceError(
        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def param_combo(msg: str = "Combination of optional parameters invalid.") -> BinanceError:
    return BinanceError(-1128, msg)


def illegal_chars(name: str, legal: str) -> BinanceError:
    return BinanceError(
        -1100, f"Illegal characters found in parameter '{name}'; legal range is '{legal}'."
    )


def invalid_enum(code: int, msg: str) -> BinanceError:
    return BinanceError(code, msg)


def bad_signature() -> BinanceError:
    return BinanceError(-1022, "Signature for this request is not valid.")


def bad_api_key_format() -> BinanceError:
    return BinanceError(-2014, "API-key format invalid.", status=401)


def rejected_api_key() -> BinanceError:
    return BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", status=401)


def timestamp_ahead() -> BinanceError:
    return BinanceError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")


def timestamp_outside_window() -> BinanceError:
    return BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")


def recv_window_too_large() -> BinanceError:
    return BinanceError(-1131, "recvWindow must be less than 60000")
