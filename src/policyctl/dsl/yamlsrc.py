"""YAML loading that keeps the source position of every key and scalar.

:func:`parse_yaml` turns a policy file into a small tree of :class:`YMap`, :class:`YSeq`
and :class:`YScalar` nodes. Every node has a :class:`~policyctl.diagnostics.Span`, and a
scalar can map any character of its (unescaped, unfolded) content back to an absolute
file position with :meth:`YScalar.pos_at`, so errors inside embedded expressions point at
the exact column of the YAML file.

The tree is built from the event stream of PyYAML's ``SafeLoader`` parser (the input of
its composer) by an iterative builder instead of ``yaml.compose``: the builder has no
recursion, so a ``[[[[...`` bomb cannot blow the Python stack, and it enforces the limits
(nesting depth, alias expansion) while the events arrive, before anything big is built.
Only the standard YAML tags for strings, numbers, booleans, null, lists and mappings are
accepted; nothing is ever constructed from a tag.

Problems are reported to a :class:`~policyctl.diagnostics.Diagnostics` collector, never
raised. Codes (see ``docs/diagnostics.md``):

* ``Y001`` not valid UTF-8, ``Y002`` binary content (NUL bytes or other non-printable characters),
  ``Y003`` empty document, ``Y004`` YAML syntax error, ``Y005`` duplicate key,
  ``Y006`` alias expansion too large or recursive, ``Y007`` nesting too deep,
  ``Y008`` unsupported tag, ``Y009`` more than one document, ``Y010`` non-scalar key,
  ``Y011`` non-finite number, ``Y012`` file too large, ``Y013`` invalid value for an
  explicit tag (or an integer too large to convert), ``Y014`` invalid merge key value.

Resolution of scalars follows PyYAML's safe (YAML 1.1) resolver, with one addition from
YAML 1.2: numbers in exponent form without a dot or exponent sign (``1e-4``, ``2E6``) are
floats rather than strings. Timestamps stay strings. Mapping keys are compared by their
string content (``text``), so ``yes:`` is the key ``"yes"``.

Fatal problems (Y001, Y002, Y003, Y004 syntax errors, Y006, Y007, Y012) make
:func:`parse_yaml` return ``None``; after the others a tree is still returned, with the
offending entries dropped or kept as strings, and the diagnostics say what is wrong.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    CollectionStartEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
)
from yaml.nodes import ScalarNode
from yaml.reader import ReaderError
from yaml.scanner import Scanner

from policyctl.diagnostics import Diagnostics, Span

__all__ = [
    "MAX_ALIAS_NODES",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "YMap",
    "YNode",
    "YScalar",
    "YSeq",
    "parse_yaml",
    "to_plain",
]

MAX_FILE_BYTES = 1024 * 1024
"""Files larger than this are rejected (``Y012``) without being parsed."""

MAX_DEPTH = 64
"""Maximum nesting of lists and mappings (``Y007``), counting through aliases."""

MAX_ALIAS_NODES = 10_000
"""Maximum number of nodes that alias expansion may add to a document (``Y006``)."""

_TAG_PREFIX = "tag:yaml.org,2002:"
_STR = _TAG_PREFIX + "str"
_INT = _TAG_PREFIX + "int"
_FLOAT = _TAG_PREFIX + "float"
_BOOL = _TAG_PREFIX + "bool"
_NULL = _TAG_PREFIX + "null"
_MAP = _TAG_PREFIX + "map"
_SEQ = _TAG_PREFIX + "seq"
_MERGE = _TAG_PREFIX + "merge"
_SCALAR_TAGS = frozenset({_STR, _INT, _FLOAT, _BOOL, _NULL})
_NULL_TEXTS = frozenset({"", "~", "null", "Null", "NULL"})

_STYLES = {None: "plain", "": "plain", "'": "single", '"': "double", "|": "literal", ">": "folded"}

# Line breaks as PyYAML counts them (its Mark.line); str.splitlines agrees on all of them.
_BREAK_RE = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
_BREAKS = "\r\n\x85\u2028\u2029"
_WS = frozenset(" \t" + _BREAKS)
_SEARCH_WINDOW = 64


class _Loader(yaml.SafeLoader):
    """SafeLoader whose resolver also reads YAML 1.2 exponent numbers (``1e-4``) as floats."""


_Loader.add_implicit_resolver(
    _FLOAT,
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


# --------------------------------------------------------------------------------------
# Source text and positions


class _Source:
    """The decoded text of one file with a line table: index -> 1-based (line, col)."""

    __slots__ = ("file", "line_starts", "text")

    def __init__(self, file: str, text: str) -> None:
        self.file = file
        self.text = text
        self.line_starts = [0]
        self.line_starts.extend(m.end() for m in _BREAK_RE.finditer(text))

    def pos(self, index: int) -> tuple[int, int]:
        index = max(0, min(index, len(self.text)))
        line = bisect.bisect_right(self.line_starts, index) - 1
        return line + 1, index - self.line_starts[line] + 1

    def span(self, start: int, end: int) -> Span:
        """Span of ``text[start:end]`` with trailing blanks and line breaks trimmed."""
        end = max(start, min(end, len(self.text)))
        while end > start + 1 and self.text[end - 1] in _WS:
            end -= 1
        line, col = self.pos(start)
        end_line, end_col = self.pos(end)
        return Span(self.file, line, col, end_line, end_col)

    def point(self, index: int) -> Span:
        line, col = self.pos(index)
        return Span.point(self.file, line, col)


def _skip_properties(text: str, start: int, end: int) -> int:
    """Skip anchors (``&a``), tags (``!t``) and comments that precede a node's content."""
    i = start
    while i < end:
        ch = text[i]
        if ch in _WS:
            i += 1
        elif ch in "&!":
            while i < end and text[i] not in _WS:
                i += 1
        elif ch == "#" and (i == start or text[i - 1] in _WS):
            while i < end and text[i] not in _BREAKS:
                i += 1
        else:
            break
    return i if i < end else start


def _tag_bounds(text: str, start: int) -> tuple[int, int]:
    """Where the tag (``!foo``) of a node that starts at ``start`` is in the source."""
    i = start
    n = len(text)
    while i < n:
        ch = text[i]
        if ch in _WS:
            i += 1
        elif ch == "&":
            while i < n and text[i] not in _WS:
                i += 1
        else:
            break
    if i >= n or text[i] != "!":
        return start, start + 1
    j = i
    while j < n and text[j] not in _WS:
        j += 1
    return i, j


@dataclass(slots=True)
class _Units:
    """Source units of a scalar: where each starts, what character it stands for."""

    index: list[int] = field(default_factory=list)
    char: list[str | None] = field(default_factory=list)
    ws: list[bool] = field(default_factory=list)

    def add(self, index: int, char: str | None, ws: bool) -> None:
        self.index.append(index)
        self.char.append(char)
        self.ws.append(ws)


def _source_units(text: str, start: int, end: int, style: str) -> _Units:
    """Split ``text[start:end]`` (one scalar) into units that produce value characters."""
    units = _Units()
    if style in ("single", "double"):
        start += 1
        if end - 1 >= start and text[end - 1] == text[start - 1]:
            end -= 1
    elif style in ("literal", "folded"):
        # Skip the header line: indicator, chomping/indentation indicators and a comment.
        i = start
        while i < end and text[i] not in _BREAKS:
            i += 1
        if text.startswith("\r\n", i):
            i += 1
        start = min(i + 1, end)
    i = start
    escapes = Scanner.ESCAPE_REPLACEMENTS
    codes = Scanner.ESCAPE_CODES
    while i < end:
        ch = text[i]
        if style == "single" and ch == "'" and i + 1 < end and text[i + 1] == "'":
            units.add(i, "'", False)
            i += 2
        elif style == "double" and ch == "\\" and i + 1 < end:
            nxt = text[i + 1]
            if nxt in escapes:
                produced = escapes[nxt]
                # Point at the escaped character when it is the value's own character.
                where = i + 1 if produced == nxt else i
                units.add(where, produced, produced in _WS)
                i += 2
            elif nxt in codes:
                digits = text[i + 2 : i + 2 + codes[nxt]]
                try:
                    produced = chr(int(digits, 16))
                except (ValueError, OverflowError):
                    produced = None
                units.add(i, produced, produced is not None and produced in _WS)
                i += 2 + len(digits)
            elif nxt in _BREAKS:
                # An escaped line break joins the lines: it produces nothing.
                units.add(i, None, True)
                i += 3 if text.startswith("\r\n", i + 1) else 2
            else:
                units.add(i, ch, False)
                i += 1
        else:
            units.add(i, ch, ch in _WS)
            i += 1
    return units


def _align(value: str, units: _Units) -> list[int]:
    """Map each character of ``value`` to the source index of the unit that produced it.

    Greedy: a non-blank character matches the next unit producing it; a run of blanks and
    line breaks in the value matches the run of blank units at the same place (YAML
    folding turns line breaks plus indentation into one space or newline).
    """
    out = [0] * len(value)
    n_units = len(units.index)
    fallback = units.index[-1] + 1 if n_units else 0
    p = 0
    i = 0
    n = len(value)
    while i < n:
        c = value[i]
        if c in _WS:
            j = i
            while j < n and value[j] in _WS:
                j += 1
            q = p
            while q < n_units and units.ws[q]:
                q += 1
            length, width = j - i, q - p
            for k in range(length):
                if width == 0:
                    out[i + k] = units.index[p] if p < n_units else fallback
                elif k == 0:
                    out[i] = units.index[p]
                elif width >= length:
                    out[i + k] = units.index[p + width - length + k]
                else:
                    out[i + k] = units.index[p + min(k, width - 1)]
            p = q
            i = j
            continue
        q = p
        limit = min(n_units, p + _SEARCH_WINDOW)
        while q < limit and units.char[q] != c:
            q += 1
        if q < limit:
            out[i] = units.index[q]
            p = q + 1
        else:
            out[i] = units.index[p] if p < n_units else fallback
        i += 1
    return out


# --------------------------------------------------------------------------------------
# The tree


@dataclass(frozen=True, eq=False)
class YScalar:
    """A scalar: its resolved ``value``, its string content ``text`` and its ``style``.

    ``style`` is one of ``plain``, ``single``, ``double``, ``literal`` (``|``) and
    ``folded`` (``>``). ``value`` is what YAML resolves the scalar to: str, int, float,
    bool or None (quoted scalars are always strings).
    """

    span: Span
    value: str | int | float | bool | None
    text: str
    style: str = "plain"
    _src: _Source | None = field(default=None, repr=False)
    _start: int = field(default=0, repr=False)
    _end: int = field(default=0, repr=False)

    @cached_property
    def _offsets(self) -> list[int]:
        if self._src is None:
            return []
        units = _source_units(self._src.text, self._start, self._end, self.style)
        return _align(self.text, units)

    def pos_at(self, offset: int) -> tuple[int, int]:
        """Absolute 1-based (line, col) in the file of character ``offset`` of ``text``.

        Offsets at or past the end give the column just after the last character.
        """
        if self._src is None:
            return self.span.line, self.span.col + max(offset, 0)
        offset = max(offset, 0)
        n = len(self.text)
        if offset < n:
            return self._src.pos(self._offsets[offset])
        if n == 0:
            quoted = self.style in ("single", "double")
            return self._src.pos(self._start + (1 if quoted else 0))
        line, col = self._src.pos(self._offsets[n - 1])
        return line, col + 1

    def span_of(self, start: int, end: int) -> Span:
        """Span of ``text[start:end]`` in the file (one column wide when empty)."""
        start = max(start, 0)
        end = max(end, start)
        line, col = self.pos_at(start)
        if end == start:
            return Span(self.span.file, line, col, line, col + 1)
        end_line, end_col = self.pos_at(end - 1)
        return Span(self.span.file, line, col, end_line, end_col + self._unit_width(end - 1))

    def _unit_width(self, offset: int) -> int:
        """Source characters of text character ``offset``: 2 for an escape (``''``, ``\\"``)."""
        if self._src is None or not 0 <= offset < len(self.text):
            return 1
        src, o = self._src.text, self._offsets[offset]
        if self.style == "single" and src[o:o + 2] == "''":
            return 2
        if self.style == "double" and src[o:o + 1] == "\\":
            return 2
        return 1

    @property
    def is_null(self) -> bool:
        return self.value is None and self.style == "plain"


@dataclass(frozen=True, eq=False)
class YSeq:
    """A list of nodes."""

    span: Span
    items: list[YNode]

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[YNode]:
        return iter(self.items)


@dataclass(frozen=True, eq=False)
class YMap:
    """A mapping: ``(key, value)`` pairs in source order; keys are unique by ``text``."""

    span: Span
    items: list[tuple[YScalar, YNode]]

    @cached_property
    def _index(self) -> dict[str, tuple[YScalar, YNode]]:
        index: dict[str, tuple[YScalar, YNode]] = {}
        for key, value in self.items:
            index.setdefault(key.text, (key, value))
        return index

    def get(self, key: str) -> YNode | None:
        pair = self._index.get(key)
        return pair[1] if pair else None

    def key_node(self, key: str) -> YScalar | None:
        pair = self._index.get(key)
        return pair[0] if pair else None

    def keys(self) -> list[str]:
        return [key.text for key, _ in self.items]

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def __len__(self) -> int:
        return len(self.items)


YNode = YMap | YSeq | YScalar


def to_plain(node: YNode) -> Any:
    """Plain Python data (dicts keyed by key text, lists, scalar values), e.g. for jsonschema."""
    if isinstance(node, YMap):
        return {key.text: to_plain(value) for key, value in node.items}
    if isinstance(node, YSeq):
        return [to_plain(item) for item in node.items]
    return node.value


# --------------------------------------------------------------------------------------
# Building the tree from PyYAML events


class _Abort(Exception):
    """Internal: a fatal diagnostic was reported, stop parsing."""


@dataclass(slots=True)
class _Frame:
    kind: str  # "map" or "seq"
    start: int
    flow: bool
    anchor: str | None
    items: list[YNode] = field(default_factory=list)
    pairs: list[tuple[YNode, YNode]] = field(default_factory=list)
    key: YNode | None = None  # a mapping key waiting for its value
    last_end: int = 0
    size: int = 1
    height: int = 1


def _at(mark: Any) -> int:
    """The character index of a PyYAML mark (events always carry marks)."""
    return int(mark.index) if mark is not None else 0


def _short(text: str, limit: int = 40) -> str:
    text = text.replace("\n", "\\n").replace("`", "'")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _tag_name(tag: str) -> str:
    if tag.startswith(_TAG_PREFIX):
        return "!!" + tag[len(_TAG_PREFIX) :]
    return tag if tag.startswith("!") else f"!<{tag}>"


class _Builder:
    def __init__(self, src: _Source, loader: _Loader, diags: Diagnostics) -> None:
        self.src = src
        self.loader = loader
        self.diags = diags
        self.stack: list[_Frame] = []
        # anchor -> (node, expanded size, height, index of the anchored node)
        self.anchors: dict[str, tuple[YNode, int, int, int]] = {}
        self.open_anchors: dict[str, int] = {}
        self.expanded = 0
        self.merge_keys: set[int] = set()
        self.root: YNode | None = None

    # -- driving ---------------------------------------------------------------------

    def run(self) -> None:
        documents = 0
        while True:
            event: Event | None = self.loader.get_event()
            if event is None:
                return
            if isinstance(event, DocumentStartEvent):
                documents += 1
                if documents > 1:
                    self.diags.error(
                        "Y009",
                        "more than one document in the file",
                        self.src.point(_at(event.start_mark)),
                        help="a policy file holds one YAML document; remove the `---` "
                        "separator or split the documents into separate files",
                    )
                    return
            elif isinstance(event, ScalarEvent):
                self.scalar(event)
            elif isinstance(event, CollectionStartEvent):
                self.start(event)
            elif isinstance(event, (MappingEndEvent, SequenceEndEvent)):
                self.end(event)
            elif isinstance(event, AliasEvent):
                self.alias(event)

    def attach(self, node: YNode, size: int, height: int, end: int) -> None:
        if not self.stack:
            self.root = node
            return
        top = self.stack[-1]
        top.size += size
        top.height = max(top.height, height + 1)
        top.last_end = end
        if top.kind == "seq":
            top.items.append(node)
        elif top.key is None:
            top.key = node
        else:
            top.pairs.append((top.key, node))
            top.key = None

    def register_anchor(self, anchor: str | None, index: int) -> None:
        if anchor is None:
            return
        first = self.anchors.get(anchor)
        first_index = first[3] if first else self.open_anchors.get(anchor)
        if first_index is not None:
            line, _ = self.src.pos(first_index)
            self.diags.error(
                "Y004",
                f"duplicate anchor `&{_short(anchor)}`",
                self.src.point(index),
                help=f"the anchor is first defined on line {line}; anchor names must be unique",
            )

    # -- scalars ---------------------------------------------------------------------

    def scalar(self, event: ScalarEvent) -> None:
        style = _STYLES.get(event.style, "plain")
        start, end = _at(event.start_mark), _at(event.end_mark)
        self.register_anchor(event.anchor, start)
        if event.anchor is not None or event.tag is not None:
            start = _skip_properties(self.src.text, start, end)
        span = self.src.span(start, end)
        text = event.value
        tag = event.tag
        value: str | int | float | bool | None = text
        is_merge = False
        if tag is None or tag == "!":
            resolved = self.loader.resolve(ScalarNode, text, event.implicit)
            is_merge = resolved == _MERGE
            if resolved in (_INT, _FLOAT):
                value = self.construct(resolved, text)
                if value is None:
                    value = text
                    self.diags.error(
                        "Y013",
                        f"number `{_short(text)}` is too large",
                        span,
                        help="numbers may have at most a few thousand digits",
                    )
            elif resolved in (_BOOL, _NULL):
                value = self.construct(resolved, text)
        elif tag in _SCALAR_TAGS:
            if tag == _NULL:
                ok = text in _NULL_TEXTS
                value = None
            elif tag == _STR:
                ok = True
            else:
                value = self.construct(tag, text)
                ok = value is not None
            if not ok:
                value = text
                self.diags.error(
                    "Y013",
                    f"`{_short(text)}` is not a valid `{_tag_name(tag)}` value",
                    span,
                    help="remove the tag, or write a value of that type",
                )
        else:
            self.unsupported_tag(tag, _at(event.start_mark))
        if isinstance(value, float) and not math.isfinite(value):
            self.diags.error(
                "Y011",
                f"non-finite number `{_short(text)}`",
                span,
                help="infinity and NaN are not allowed; write a finite number",
            )
        node = YScalar(span, value, text, style, self.src, start, end)
        if is_merge:
            self.merge_keys.add(id(node))
        if event.anchor is not None:
            self.anchors[event.anchor] = (node, 1, 0, _at(event.start_mark))
        self.attach(node, 1, 0, end)

    def construct(self, tag: str, text: str) -> str | int | float | bool | None:
        """Resolve a scalar's text to int/float/bool/None; None also when it is invalid."""
        node = ScalarNode(tag, text)
        try:
            if tag == _INT:
                return int(self.loader.construct_yaml_int(node))
            if tag == _FLOAT:
                return float(self.loader.construct_yaml_float(node))
            if tag == _BOOL:
                return bool(self.loader.construct_yaml_bool(node))
        except (ValueError, KeyError, IndexError, OverflowError, TypeError):
            return None
        return None

    def unsupported_tag(self, tag: str, node_start: int) -> None:
        self.diags.error(
            "Y008",
            f"unsupported tag `{_short(_tag_name(tag))}`",
            self.src.span(*_tag_bounds(self.src.text, node_start)),
            help="policy files may only contain plain strings, numbers, booleans, "
            "lists and mappings; remove the tag",
        )

    # -- collections -----------------------------------------------------------------

    def start(self, event: CollectionStartEvent) -> None:
        kind = "map" if isinstance(event, MappingStartEvent) else "seq"
        index = _at(event.start_mark)
        if len(self.stack) + 1 > MAX_DEPTH:
            self.diags.error(
                "Y007",
                f"nesting is too deep (more than {MAX_DEPTH} levels)",
                self.src.point(index),
                help="policy files do not need deeply nested lists or mappings",
            )
            raise _Abort
        tag = event.tag
        if tag is not None and tag != "!" and tag != (_MAP if kind == "map" else _SEQ):
            self.unsupported_tag(tag, index)
        self.register_anchor(event.anchor, index)
        if event.anchor is not None:
            self.open_anchors[event.anchor] = index
        flow = bool(event.flow_style)
        self.stack.append(_Frame(kind, index, flow, event.anchor, last_end=_at(event.end_mark)))

    def end(self, event: MappingEndEvent | SequenceEndEvent) -> None:
        frame = self.stack.pop()
        end = _at(event.end_mark) if frame.flow else frame.last_end
        span = self.src.span(frame.start, end)
        node: YNode = (
            YMap(span, self.finish_map(frame)) if frame.kind == "map" else YSeq(span, frame.items)
        )
        if frame.anchor is not None:
            self.open_anchors.pop(frame.anchor, None)
            self.anchors[frame.anchor] = (node, frame.size, frame.height, frame.start)
        self.attach(node, frame.size, frame.height, end)

    def finish_map(self, frame: _Frame) -> list[tuple[YScalar, YNode]]:
        explicit: dict[str, YScalar] = {}
        entries: list[tuple[YScalar, YNode, bool]] = []
        for key, value in frame.pairs:
            if not isinstance(key, YScalar):
                what = "mapping" if isinstance(key, YMap) else "list"
                self.diags.error(
                    "Y010",
                    f"a {what} cannot be used as a key",
                    key.span,
                    help="keys must be plain names such as `triggers`",
                )
                continue
            if id(key) in self.merge_keys:
                entries.append((key, value, True))
                continue
            first = explicit.get(key.text)
            if first is not None:
                self.diags.error(
                    "Y005",
                    f"duplicate key `{_short(key.text)}`",
                    key.span,
                    help=f"`{_short(key.text)}` is already defined on line {first.span.line}; "
                    "remove or rename one of them",
                )
                continue
            explicit[key.text] = key
            entries.append((key, value, False))
        if not any(is_merge for _, _, is_merge in entries):
            return [(key, value) for key, value, _ in entries]
        # Merge keys (`<<: *defaults`): explicit keys win, earlier merged mappings win.
        seen = set(explicit)
        items: list[tuple[YScalar, YNode]] = []
        for key, value, is_merge in entries:
            if not is_merge:
                items.append((key, value))
                continue
            sources = value.items if isinstance(value, YSeq) else [value]
            for source in sources:
                if not isinstance(source, YMap):
                    self.diags.error(
                        "Y014",
                        "a merge key `<<` needs a mapping or a list of mappings",
                        source.span,
                        help="write `<<: *anchor` where the anchor names a mapping",
                    )
                    continue
                for merged_key, merged_value in source.items:
                    if merged_key.text not in seen:
                        seen.add(merged_key.text)
                        items.append((merged_key, merged_value))
        return items

    # -- aliases ---------------------------------------------------------------------

    def alias(self, event: AliasEvent) -> None:
        name = event.anchor or ""
        start, end = _at(event.start_mark), _at(event.end_mark)
        span = self.src.span(start, end)
        if name in self.open_anchors:
            self.diags.error(
                "Y006",
                f"recursive alias `*{_short(name)}`",
                span,
                help="the alias refers to a node that contains it",
            )
            raise _Abort
        target = self.anchors.get(name)
        if target is None:
            self.diags.error(
                "Y004",
                f"undefined alias `*{_short(name)}`",
                span,
                help=f"define the anchor with `&{_short(name)}` before using it",
            )
            self.attach(YScalar(span, None, "", "plain", self.src, start, start), 1, 0, end)
            return
        node, size, height, _ = target
        self.expanded += size
        if self.expanded > MAX_ALIAS_NODES:
            self.diags.error(
                "Y006",
                "alias expansion is too large",
                span,
                help=f"aliases would expand to more than {MAX_ALIAS_NODES} nodes "
                '(a "billion laughs" document?)',
            )
            raise _Abort
        if len(self.stack) + height > MAX_DEPTH:
            self.diags.error(
                "Y007",
                f"nesting is too deep (more than {MAX_DEPTH} levels)",
                span,
                help="the alias expands to lists or mappings nested too deeply",
            )
            raise _Abort
        self.attach(node, size, height, end)


# --------------------------------------------------------------------------------------
# Entry point


def _problem_message(problem: str) -> str:
    problem = problem.strip() or "invalid yaml"
    problem = re.sub(r"'([^'\n]{1,40})'", r"`\1`", problem)
    return problem[0].lower() + problem[1:]


def _syntax_error(err: yaml.MarkedYAMLError, src: _Source, diags: Diagnostics) -> None:
    mark = err.problem_mark or err.context_mark
    span = src.point(_at(mark)) if mark is not None else src.point(0)
    message = _problem_message(err.problem or err.context or "invalid yaml")
    help_parts = []
    if err.context:
        where = ""
        if err.context_mark is not None and err.problem_mark is not None:
            where = f" that starts on line {src.pos(_at(err.context_mark))[0]}"
        help_parts.append(_problem_message(err.context) + where)
    at_tab = mark is not None and src.text[_at(mark) : _at(mark) + 1] == "\t"
    if at_tab or "\\t" in (err.problem or ""):
        help_parts.append("YAML does not allow tabs for indentation; use spaces")
    diags.error("Y004", message, span, help="; ".join(help_parts) or None)


def _position_in(prefix: str) -> tuple[int, int]:
    src = _Source("", prefix.removeprefix("\ufeff"))
    return src.pos(len(src.text))


def _binary_error(diags: Diagnostics, file: str, prefix: str, help: str) -> None:
    line, col = _position_in(prefix)
    diags.error("Y002", "file contains binary data (a NUL byte)", Span.point(file, line, col), help)


def parse_yaml(data: bytes | str, file: str, diags: Diagnostics) -> YNode | None:
    """Parse one YAML document with positions; report problems to ``diags``.

    Returns the root node, or None when the file cannot be used at all. The decoded text
    is recorded in ``diags.sources[file]`` so diagnostics can show the source line.
    """
    binary_help = "policy files must be plain UTF-8 text"
    if isinstance(data, str):
        too_large = len(data) > MAX_FILE_BYTES or (
            len(data) * 4 > MAX_FILE_BYTES
            and len(data.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES
        )
        size = len(data)
    else:
        data = bytes(data)
        too_large = len(data) > MAX_FILE_BYTES
        size = len(data)
    if too_large:
        diags.error(
            "Y012",
            "file is too large",
            Span.point(file, 1, 1),
            help=f"policy files may be at most {MAX_FILE_BYTES // (1024 * 1024)} MB "
            f"(this one has {size} {'bytes' if isinstance(data, bytes) else 'characters'})",
        )
        return None

    if isinstance(data, bytes):
        nul = data.find(b"\x00")
        if nul >= 0:
            if data.startswith((b"\xff\xfe", b"\xfe\xff")):
                binary_help = "the file looks UTF-16 encoded; save it as UTF-8"
            _binary_error(diags, file, data[:nul].decode("utf-8", "replace"), binary_help)
            return None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            line, col = _position_in(data[: err.start].decode("utf-8", "replace"))
            diags.sources[file] = data.decode("utf-8", "replace").removeprefix("\ufeff")
            diags.error(
                "Y001",
                f"file is not valid utf-8 (byte `0x{data[err.start]:02x}`)",
                Span.point(file, line, col),
                help="policy files must be encoded as UTF-8; re-save the file as UTF-8",
            )
            return None
    else:
        text = data
        nul = text.find("\x00")
        if nul >= 0:
            _binary_error(diags, file, text[:nul], binary_help)
            return None

    text = text.removeprefix("\ufeff")
    diags.sources[file] = text
    src = _Source(file, text)
    try:
        loader = _Loader(text)
    except ReaderError as err:
        char = err.character if isinstance(err.character, int) else ord(str(err.character)[:1])
        diags.error(
            "Y002",
            f"file contains a non-printable character `U+{char:04X}`",
            src.point(err.position),
            help=binary_help,
        )
        return None

    builder = _Builder(src, loader, diags)
    try:
        builder.run()
    except _Abort:
        return None
    except yaml.MarkedYAMLError as err:
        _syntax_error(err, src, diags)
        return None
    except RecursionError:
        diags.error(
            "Y007",
            f"nesting is too deep (more than {MAX_DEPTH} levels)",
            src.point(0),
            help="policy files do not need deeply nested lists or mappings",
        )
        return None
    finally:
        loader.dispose()

    root = builder.root
    if root is None:
        diags.error(
            "Y003", "empty document", Span.point(file, 1, 1), help="the file has no YAML content"
        )
        return None
    if isinstance(root, YScalar) and root.is_null:
        diags.error(
            "Y003",
            "empty document",
            root.span if root.text else Span.point(file, 1, 1),
            help="the document is `null`; a policy file must be a mapping",
        )
        return None
    return root
