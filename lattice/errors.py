"""Errors raised by the lattice package (everything that talks to NATS).

::

    LatticeError
    ├── ConnectError        no NATS server reachable at the URL        (retryable)
    ├── RequestTimeout      nobody answered a request in time          (retryable)
    ├── RemoteError         the peer answered with an error reply
    ├── BadMessage          a message failed to decode or validate
    ├── KeyValueFailure     a JetStream KV operation failed            (retryable)
    └── AuthError           keys or credentials missing or unreadable (lattice.auth)

Errors from nats-py are translated here, at the boundary, with ``raise ... from``.
"""

from __future__ import annotations


class LatticeError(Exception):
    retryable: bool = False


class ConnectError(LatticeError):
    retryable = True


class RequestTimeout(LatticeError):
    retryable = True


class RemoteError(LatticeError):
    def __init__(self, message: str, code: str = "error") -> None:
        super().__init__(message)
        self.code = code


class BadMessage(LatticeError):
    pass


class KeyValueFailure(LatticeError):
    retryable = True


class AuthError(LatticeError):
    """Keys or credentials are missing, unreadable or of the wrong kind."""
