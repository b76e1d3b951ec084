"""The cross-host codec: WIT values as msgpack, guided by a function's type."""
