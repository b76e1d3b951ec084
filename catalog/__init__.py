"""The catalog: names every layer of the project agrees on, as plain data.

It imports nothing of the project (it is the bottom layer in ``.importlinter``), so the
CLI, the host, the controller, the providers, the lattice and deploy all read the same
table instead of spelling the same string in several places:

- ``catalog.contracts``: the WIT interfaces providers serve to components
  (``wasi:keyvalue/store@0.2.0-draft``, ...);
- ``catalog.kinds``: the provider kinds (``http-server``, ``keyvalue``, ``logging``,
  ``config``, ``keyvalue-redis``): which contract each serves, whether it is built into
  every host or placed as its own process, what config it takes and how that config
  reaches the process, which wadm image names stand for it;
- ``catalog.annotations``: the annotation keys the controller writes on what it runs
  (``app``, ``revision``, ``managed-by``, ``version``) and reads back from heartbeats.

Adding a provider kind is one ``ProviderKind`` entry in ``catalog.kinds.KINDS`` plus its
implementation (a backend in ``providers/``; for a placed kind, its command in
``providers.run``).
"""
