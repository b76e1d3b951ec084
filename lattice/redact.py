"""Text made safe to show: secrets kept out of it, control characters escaped.

Used wherever a value an operator or a client supplied ends up in text that
leaves the code that uses it: a component source in an inventory, an event or a
refusal sent back over the control interface; a Redis URL in a provider's log; a
NATS URL in a connection error; a provider's config in an inventory. The value
actually used (to connect, to fetch) is never touched: redaction happens where a
value becomes text or leaves the host.

- ``redacted(url)``: the password of the userinfo (or a lone userinfo, often a
  token: ``https://TOKEN@host``) and the values of secret-looking query
  parameters become ``***``;
- ``redacted_text(text)``: every URL inside free text (an exception message, a
  log line) redacted the same way;
- ``redacted_config(config)``: values under secret-looking keys (``password``,
  ``api_key``, ``token`` ...) masked, every other value redacted as a URL.

None of them raises: a URL too broken to parse is shown as a placeholder rather
than failing the error path that wanted to print it.

Text that came from elsewhere (a label, a component's log line, an error a
host sent) may also hold terminal escapes or newlines: ``printable(text)``
escapes every control, format and line-separator character (``\x1b`` becomes
the four characters ``\x1b``, a newline ``\n``), so such text can neither
repaint a terminal nor start a line that looks like someone else's. The CLI
prints through it (``cli.common``), component logs go through it
(``providers.logging_provider``), and ``SafeFormatter`` applies both
redaction and escaping to every log message a host or provider process writes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from urllib.parse import unquote_plus, urlsplit, urlunsplit

MASK = "***"
# Query parameters whose values are credentials (matched case-insensitively, as
# substrings: "db_password", "X-Amz-Signature" and "access_token" all count).
SECRET_PARAMS = ("pass", "pwd", "secret", "token", "key", "signature", "sig", "auth", "cred")
# Config keys are names a person chose; a substring match on "key" would hide
# ``key_prefix``, so a config key is secret when it names a secret word anywhere
# or ends in "key" (``api_key``, ``privateKey``).
SECRET_CONFIG_WORDS = (
    "pass",
    "pwd",
    "secret",
    "token",
    "cred",
    "auth",
    "signature",
    "cookie",
    "session",
    "private",
)
UNPARSEABLE = "<unparseable URL>"
# A URL inside free text: a scheme, "://", then anything up to whitespace or a quote.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>`]+")


# C0 and C1 controls, DEL, zero-width and bidi formatting characters, the Unicode
# line and paragraph separators (str.splitlines breaks on them) and the BOM.
_UNPRINTABLE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]"
)
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str) -> str:
    """``text`` on one line, with control and formatting characters escaped."""
    return _UNPRINTABLE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    named = _NAMED_ESCAPES.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class SafeFormatter(logging.Formatter):
    """A log formatter whose messages are redacted and one line each.

    Only the message is changed: a traceback logged with it keeps its lines.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = printable(redacted_text(record.message))
        return super().formatMessage(record)


def redacted(url: str) -> str:
    """``url`` without the password of its userinfo and without secret query values."""
    try:
        parts = urlsplit(url)
        netloc = _netloc(parts.netloc)
        query = _query(parts.query)
        if netloc == parts.netloc and query == parts.query:
            return url
        return urlunsplit(parts._replace(netloc=netloc, query=query))
    except (ValueError, TypeError):
        return UNPARSEABLE


def redacted_text(text: str) -> str:
    """``text`` with every URL in it redacted (see ``redacted``)."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda match: redacted(match.group(0)), text)


def redacted_config(config: Mapping[str, str]) -> dict[str, str]:
    """``config`` as it may be shown: secret-looking keys masked, URLs redacted."""
    return {
        key: MASK if secret_config_key(key) else redacted_text(value)
        for key, value in config.items()
    }


def secret_config_key(key: str) -> bool:
    lowered = key.lower()
    return lowered.endswith("key") or any(word in lowered for word in SECRET_CONFIG_WORDS)


def _netloc(netloc: str) -> str:
    userinfo, at, host = netloc.rpartition("@")
    if not at:
        return netloc
    user, colon, _password = userinfo.partition(":")
    # A lone userinfo without ':' may be a token (https://TOKEN@host): hide it too.
    if not colon and user:
        return f"{MASK}@{host}"
    return f"{user}:{MASK}@{host}"


def _query(query: str) -> str:
    # Segment by segment, so everything but a secret value stays as it was written.
    segments = []
    for segment in query.split("&"):
        name, eq, _value = segment.partition("=")
        segments.append(f"{name}={MASK}" if eq and _secret(unquote_plus(name)) else segment)
    return "&".join(segments)


def _secret(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in SECRET_PARAMS)
