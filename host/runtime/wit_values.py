"""WIT values as wasmtime-py represents them, and the rules for their cases.

A component's values are the Python objects of ``wasmtime.component``:
records are ``Record`` objects with kebab-case attribute names, ``list<u8>`` is
``bytes``, tuples are tuples, enums ``str``, flags a ``set`` of names. The
cases of a variant, an option or a result follow one rule
(``VariantLikeType._tagged`` in ``wasmtime/component/_types.py``): when the
Python classes of the cases' payloads overlap (a payload-less case counts as
``object``), every value is a ``Variant(tag, payload)``; when they do not, a
value is the bare payload, ``None`` for the case without one, and its class
says which case it is.

``WitCases`` is that rule for one type, the only implementation of it: the
fast calls (``host.runtime.lowering``) and the cross-host codec
(``host.wire``) both ask it which case a value is and build case values with
it. Nothing here touches wasmtime's C API; the classes of each case come from
the runtime's description of the type (``host.runtime.wit_types``).

Host functions the runtime defines itself (the WASI it serves) use one *plain*
spelling instead, the same for every type (``plain_cases``): a result is
``Ok(value)`` or ``Err(value)``, an option ``None`` or its payload, a variant
``Variant(tag, payload)``. The fast converters take and give it directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from wasmtime.component import Record, Variant

__all__ = [
    "Case",
    "Err",
    "HandleRef",
    "HostHandle",
    "NoCase",
    "Ok",
    "Record",
    "Variant",
    "WitCases",
    "plain_cases",
]


class HostHandle:
    """A host-defined resource a host function hands out: its rep and kind.

    Host functions that convert handles straight through the C API
    (``host.runtime.lowering``, ``host_handles``) return these instead of
    wasmtime-py's ``ResourceHost``.
    """

    __slots__ = ("kind", "rep")

    def __init__(self, rep: int, kind: int) -> None:
        self.rep = rep
        self.kind = kind


class HandleRef:
    """A handle a host function received, as the address of its ``resource_any``
    (valid while the call runs; ``host.runtime.lowering.host_rep`` reads its rep)."""

    __slots__ = ("address",)

    def __init__(self, address: int) -> None:
        self.address = address


# What a resource payload may be besides wasmtime-py's classes (see above).
HANDLE_CLASSES = frozenset({HostHandle, HandleRef})


@dataclass(frozen=True, slots=True)
class Case:
    """One case: its position, name, and the classes wasmtime-py gives its payload.

    A case without a payload has ``has_payload`` False and the classes
    ``(object,)``, which is what it counts as when cases are compared.
    """

    index: int
    name: str
    has_payload: bool
    classes: tuple[type, ...]


class NoCase(Exception):
    """A value that is of none of a type's cases.

    ``not_variant``: the type is tagged and the value is not a ``Variant``;
    otherwise ``tag`` is the Variant's unknown tag (tagged types) or None (an
    untagged value whose class fits no case). ``wasmtime_error`` is what
    wasmtime-py raises when lowering such a value.
    """

    def __init__(self, not_variant: bool, tag: Any = None) -> None:
        super().__init__("value not valid for this variant")
        self.not_variant = not_variant
        self.tag = tag

    def wasmtime_error(self) -> Exception:
        if self.not_variant:
            return TypeError("expected Variant type")
        return ValueError("value not valid for this variant")


def _overlaps(later: tuple[type, ...], earlier: tuple[type, ...]) -> bool:
    return any(issubclass(a, b) for a in later for b in earlier)


class WitCases:
    """The cases of one variant, option or result type, and wasmtime-py's rule for them.

    Build it once per type from each case's name and payload classes (None:
    no payload); it holds no per-call state.
    """

    __slots__ = ("_by_name", "_by_type", "_misreads", "cases", "kind", "tagged")

    def __init__(self, kind: str, cases: Sequence[tuple[str, frozenset[type] | None]]) -> None:
        self.kind = kind  # "variant", "option" or "result", for messages
        self.cases = tuple(
            Case(i, name, classes is not None, (object,) if classes is None else tuple(classes))
            for i, (name, classes) in enumerate(cases)
        )
        self.tagged = _tagged([frozenset(case.classes) for case in self.cases])
        # The first of two cases with one name wins, as in wasmtime-py's lookup.
        self._by_name = {case.name: case for case in reversed(self.cases)}
        # Untagged classes are disjoint, so a value's exact class names its case.
        self._by_type: dict[type, Case] = {}
        for case in () if self.tagged else self.cases:
            for cls in case.classes if case.has_payload else (type(None),):
                self._by_type[cls] = case
        self._misreads = {} if self.tagged else self._find_misreads()

    def _find_misreads(self) -> dict[int, list[Case]]:
        """Per case, the earlier cases wasmtime-py might take its bare values for."""
        misreads: dict[int, list[Case]] = {}
        for case in self.cases:
            for earlier in self.cases[: case.index]:
                if earlier.has_payload and _overlaps(case.classes, earlier.classes):
                    misreads.setdefault(case.index, []).append(earlier)
        return misreads

    def named(self, tag: Any) -> Case | None:
        """The case a tag names (None: no such case); the tag may be anything."""
        return self._by_name.get(tag) if isinstance(tag, str) else None

    def split(self, value: Any, exact_first: bool = False) -> tuple[Case, Any]:
        """The case a Python value is of, and its payload; NoCase if none fits.

        wasmtime-py's rule, as it lowers a value: a tagged type takes a
        ``Variant`` and its tag; otherwise the first case whose classes the
        value is an instance of, or the payload-less case for ``None``. So a
        ``bool`` goes to an earlier ``u32`` case, any value to an earlier
        ``option`` case. ``exact_first`` picks by exact class first, so a value
        that wasmtime-py lifted from a later case keeps that case.
        """
        if self.tagged:
            return split_variant(self, value)
        if exact_first:
            case = self._by_type.get(type(value))
            if case is not None:
                return case, value
        for case in self.cases:
            if case.has_payload:
                if isinstance(value, case.classes):
                    return case, value
            elif value is None:
                return case, None
        raise NoCase(not_variant=False)

    def value(self, case: Case, payload: Any) -> Any:
        """The Python value of a case with its payload (None for a case without one)."""
        return Variant(case.name, payload) if self.tagged else payload

    def misread_as(self, case: Case, payload: Any) -> Case | None:
        """The earlier case wasmtime-py would lower ``value(case, payload)`` as, if any.

        Only untagged types have such cases: a bare value carries no tag, so
        wasmtime-py takes the first case its class fits.
        """
        for earlier in self._misreads.get(case.index, ()):
            if isinstance(payload, earlier.classes):
                return earlier
        return None


def split_variant(cases: WitCases | PlainCases, value: Any) -> tuple[Case, Any]:
    """A ``Variant``'s case (by its tag) and payload; NoCase when it is not one or its
    tag names no case."""
    if not isinstance(value, Variant):
        raise NoCase(not_variant=True)
    case = cases.named(value.tag)
    if case is None:
        raise NoCase(not_variant=False, tag=value.tag)
    return case, value.payload


def _tagged(classes: list[frozenset[type]]) -> bool:
    """wasmtime-py's rule: Variant objects iff the cases' classes overlap."""
    seen: set[type] = set()
    for case in classes:
        if case & seen:
            return True
        seen |= case
    return False


# -- the plain spelling of host functions -------------------------------------------


@dataclass(frozen=True, slots=True)
class Ok:
    """The ``ok`` case of a result, in the plain spelling (``Ok()``: no payload)."""

    value: Any = None


@dataclass(frozen=True, slots=True)
class Err:
    """The ``err`` case of a result, in the plain spelling."""

    value: Any = None


class PlainCases:
    """The cases of one variant, option or result type, in the plain spelling.

    It answers what ``WitCases`` answers (``split``, ``value``, ``named``,
    ``cases``), so the fast converters use either.
    """

    __slots__ = ("_by_name", "cases", "kind")

    def __init__(self, cases: WitCases) -> None:
        self.kind = cases.kind
        self.cases = cases.cases
        self._by_name = {case.name: case for case in reversed(self.cases)}

    def named(self, tag: Any) -> Case | None:
        return self._by_name.get(tag) if isinstance(tag, str) else None

    def split(self, value: Any, exact_first: bool = False) -> tuple[Case, Any]:
        return split_variant(self, value)

    def value(self, case: Case, payload: Any) -> Any:
        return Variant(case.name, payload)


class _PlainOption(PlainCases):
    __slots__ = ()

    def split(self, value: Any, exact_first: bool = False) -> tuple[Case, Any]:
        return (self.cases[0], None) if value is None else (self.cases[1], value)

    def value(self, case: Case, payload: Any) -> Any:
        return None if case.index == 0 else payload


class _PlainResult(PlainCases):
    __slots__ = ()

    def split(self, value: Any, exact_first: bool = False) -> tuple[Case, Any]:
        cls = type(value)
        if cls is Ok:
            return self.cases[0], value.value
        if cls is Err:
            return self.cases[1], value.value
        raise NoCase(not_variant=False)

    def value(self, case: Case, payload: Any) -> Any:
        return Ok(payload) if case.index == 0 else Err(payload)


def plain_cases(cases: WitCases) -> PlainCases:
    """The plain spelling of a type's cases (option: none, some; result: ok, err)."""
    if cases.kind == "option":
        return _PlainOption(cases)
    if cases.kind == "result":
        return _PlainResult(cases)
    return PlainCases(cases)
