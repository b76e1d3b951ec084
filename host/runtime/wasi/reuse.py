"""Whether a ``wasi:http`` component's instances may serve more than one request.

Reusing an instance is what makes the ``wasi:http`` path fast: a fresh instance
per request costs an instantiation (~4 ms for a componentize-py component),
more than the request itself. ``wasmtime serve`` reuses instances of
components that allow it; most do (componentize-py's, Rust's ``wasi`` crate).
StarlingMonkey, the engine of componentize-js, does not: it keeps the fetch
event of the first request, and a second ``handle`` on the same instance fails
("FetchEvent#respondWith can't be called twice on the same event") before
answering.

So the policy, per component:

- config ``http_instance_reuse`` = ``true`` / ``false`` decides;
- otherwise (``auto``) instances are reused unless the component's producers
  section says it was made by ComponentizeJS;
- whatever was decided, a request that fails on a reused instance before
  anything was sent (no response head, no request body read) is retried once
  on a fresh instance; if that one succeeds, the component gets fresh
  instances from then on (``host.runtime.components`` logs it). A request the
  guest had already acted on (an outgoing call, a keyvalue write) is repeated
  by the retry: that happens at most once per component.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["REUSE_CONFIG_KEY", "instance_reuse", "producers"]

REUSE_CONFIG_KEY = "http_instance_reuse"
# Producers (``processed-by`` or ``language``) whose components keep per-request state.
_SINGLE_USE_PRODUCERS = frozenset({"componentizejs", "starlingmonkey"})
_TRUE = frozenset({"true", "yes", "1", "on"})
_FALSE = frozenset({"false", "no", "0", "off"})


def instance_reuse(config: Mapping[str, str], wasm: bytes) -> bool:
    """The reuse policy of a component from its config and its bytes (see above)."""
    setting = config.get(REUSE_CONFIG_KEY, "auto").strip().lower()
    if setting in _TRUE:
        return True
    if setting in _FALSE:
        return False
    if setting != "auto":
        raise ValueError(f"{REUSE_CONFIG_KEY} must be true, false or auto, not {setting!r}")
    names = {name.lower() for _field, name, _version in producers(wasm)}
    return not names & _SINGLE_USE_PRODUCERS


def producers(wasm: bytes) -> list[tuple[str, str, str]]:
    """(field, name, version) of the top-level ``producers`` custom sections.

    Only the outermost sections are read (that is where a componentizer writes
    its name); anything malformed reads as no producers.
    """
    found: list[tuple[str, str, str]] = []
    try:
        pos = 8  # magic and version/layer
        while pos < len(wasm):
            section, pos = wasm[pos], pos + 1
            size, pos = _leb(wasm, pos)
            end = pos + size
            if section == 0:
                name, at = _name(wasm, pos)
                if name == "producers":
                    found.extend(_producers(wasm, at))
            pos = end
    except (IndexError, UnicodeDecodeError):
        return found
    return found


def _producers(wasm: bytes, pos: int) -> list[tuple[str, str, str]]:
    found = []
    fields, pos = _leb(wasm, pos)
    for _ in range(fields):
        field, pos = _name(wasm, pos)
        values, pos = _leb(wasm, pos)
        for _ in range(values):
            name, pos = _name(wasm, pos)
            version, pos = _name(wasm, pos)
            found.append((field, name, version))
    return found


def _name(wasm: bytes, pos: int) -> tuple[str, int]:
    size, pos = _leb(wasm, pos)
    if pos + size > len(wasm):
        raise IndexError("name past the end")
    return wasm[pos : pos + size].decode("utf-8"), pos + size


def _leb(wasm: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = wasm[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 35:
            raise IndexError("LEB128 too long")
