"""The wasm runtime of a host: the only package that imports wasmtime.

Loading and compiling (``loader``, ``engine``), instance pools on worker
threads (``pool``, ``workers``), import bindings (``bindings``), typed calls
(``fastcall``: values through ``lowering`` and ``c_api``) and ``HostRuntime``
tying them together (``components``). ``wit_types`` describes WIT types as
plain data and ``wit_values`` holds wasmtime-py's rules for case values; the
cross-host codec (``host.wire``) builds on those two instead of on wasmtime.
"""
