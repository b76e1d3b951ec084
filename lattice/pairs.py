"""KEY=VALUE text, as typed on a command line: host labels, config values, settings.

One parser for all of them, so each refuses the same mistakes with the same
message, naming the item that is wrong.
"""

from __future__ import annotations

from collections.abc import Iterable


class BadPair(ValueError):
    """A text that is not KEY=VALUE (no ``=``, or nothing before it)."""


def parse_pair(text: str, what: str = "") -> tuple[str, str]:
    """``"zone = eu"`` -> ``("zone", "eu")``; ``what`` names the item in the error."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        named = f"{what} {text!r}" if what else repr(text)
        raise BadPair(f"{named} is not KEY=VALUE")
    return key, value.strip()


def parse_pairs(texts: Iterable[str], what: str = "") -> dict[str, str]:
    """Several KEY=VALUE texts as a dict; a later key wins."""
    return dict(parse_pair(text, what) for text in texts)
