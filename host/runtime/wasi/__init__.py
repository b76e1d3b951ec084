"""WASI served by the host itself, to every component.

Not wasmtime's own WASI (``Linker.add_wasip2``), for two reasons. It cannot
serve a ``wasi:http/incoming-handler`` export from Python: the embedding API
makes no native ``incoming-request`` or ``response-outparam``, and resources
made in Python do not match its ``wasi:http/types``. And its blocking calls (a
pollable's ``block``: a guest's sleep) cannot be refused, so a guest on it could
stall the event loop's thread, where the host tries short calls first
(``host.runtime.inline``); every host call here can refuse. So the host defines
the resources of WASI 0.2 itself (``table``) and serves, one module per package:

- ``http_types`` / ``http_outgoing``: ``wasi:http`` (the incoming exchange, and
  outgoing requests under the component's ``http-client`` policy);
  ``http_response`` sends an exchange's response; ``body_length`` holds a
  response's or an outgoing request's body to the Content-Length it declares;
- ``io``: errors, pollables, streams;
- ``cli``: granted environment only, empty stdin, stdout/stderr to the host
  log, no terminal, ``exit`` traps;
- ``clocks``, ``random``;
- ``denied``: ``wasi:filesystem`` and ``wasi:sockets`` that permit nothing.

``host.WasiHost`` binds what a component imports; ``values`` translates between
wasmtime-py's spelling of values and the plain one the modules use.
"""

from host.runtime.wasi.host import SERVED_VERSIONS, WasiHost
from host.runtime.wasi.http_outgoing import HttpClientGrant
from host.runtime.wasi.http_types import Exchange

__all__ = ["SERVED_VERSIONS", "Exchange", "HttpClientGrant", "WasiHost"]
