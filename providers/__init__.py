"""Capability providers: each binds one WIT contract to something real.

Providers are plain Python (no wasmtime); ``host.runtime.bindings`` adapts a
component's imports to them. The WIT files live in ``providers/wit``.
"""
