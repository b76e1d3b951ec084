"""The host daemon of one node: its wasm runtime, codec and place on the lattice.

``runtime/`` runs components with wasmtime (the only package importing it);
``wire/`` encodes WIT values for calls between hosts; the daemon itself
(``daemon``, ``control``, ``supervisor``, ``identity``) serves the lattice.
"""
