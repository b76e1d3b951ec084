"""URLs made safe to log or put in an error: no passwords, no secret-looking query values.

Used wherever a URL an operator or a client supplied ends up in text: a Redis
URL in a provider's log, a component source in a refusal sent back over the
control interface. It never raises: a URL too broken to parse is shown as a
placeholder rather than failing the error path that wanted to print it.
"""

from __future__ import annotations

from urllib.parse import unquote_plus, urlsplit, urlunsplit

MASK = "***"
# Query parameters whose values are credentials (matched case-insensitively, as
# substrings: "db_password", "X-Amz-Signature" and "access_token" all count).
SECRET_PARAMS = ("pass", "pwd", "secret", "token", "key", "signature", "sig", "auth", "cred")


def redacted(url: str) -> str:
    """``url`` without the password of its userinfo and without secret query values."""
    try:
        parts = urlsplit(url)
        netloc = _netloc(parts.netloc)
        query = _query(parts.query)
        if netloc == parts.netloc and query == parts.query:
            return url
        return urlunsplit(parts._replace(netloc=netloc, query=query))
    except ValueError:
        return "<unparseable URL>"


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
