"""WASI served by the host itself, for components that speak ``wasi:http``.

wasmtime's own WASI (``Linker.add_wasip2``) serves every other component. It
cannot serve a ``wasi:http/incoming-handler`` export from Python: the embedding
API makes no native ``incoming-request`` or ``response-outparam``, and
resources made in Python do not match its ``wasi:http/types``. So for a
component that imports ``wasi:http``, the host defines the resources of WASI
0.2 itself (``table``) and serves, one module per package:

- ``http_types`` / ``http_outgoing``: ``wasi:http`` (the incoming exchange, and
  outgoing requests under the component's ``http-client`` policy);
- ``io``: errors, pollables, streams;
- ``cli``: granted environment only, empty stdin, stdout/stderr to the host
  log, no terminal, ``exit`` traps;
- ``clocks``, ``random``;
- ``denied``: ``wasi:filesystem`` and ``wasi:sockets`` that permit nothing.

``host.WasiHost`` binds what a component imports; ``values`` translates between
wasmtime-py's spelling of values and the plain one the modules use.
"""

from host.runtime.wasi.host import SERVED_VERSIONS, WasiHost, serves_wasi_itself
from host.runtime.wasi.http_outgoing import HttpClientGrant
from host.runtime.wasi.http_types import Exchange

__all__ = ["SERVED_VERSIONS", "Exchange", "HttpClientGrant", "WasiHost", "serves_wasi_itself"]
