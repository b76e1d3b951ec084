"""The wasm runtime of a host: the only package that imports wasmtime.

Loading and compiling (``loader``, ``engine``), instance pools on worker
threads (``pool``, ``workers``), import bindings (``bindings``), typed calls
(``fastcall``) and ``HostRuntime`` tying them together (``components``).
"""
