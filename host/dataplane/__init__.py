"""The host's data plane spread over several processes: one per core, one port.

One Python process serves HTTP through components on about one core: wasm
runs on worker threads without the GIL, but parsing HTTP, routing and handing
calls over all need it. A host configured with ``data_plane_processes = N``
(N >= 2) therefore serves its HTTP port from N processes: the daemon itself
and N - 1 *members* (``host.dataplane.member``), each with its own runtime,
instance pools and event loop. The daemon alone accepts on the port and hands
each connection to the process holding the fewest open connections, itself
included (``host.dataplane.connections``): with a few kept-alive clients,
SO_REUSEPORT's hash often gave one process twice the other's share, and the
tail latency followed. N of 0 or 1 is the plain in-process host.

The daemon stays the host's one face to the lattice: control, heartbeats and
inventory, exports served to other hosts. It drives its members over a private
channel (``host.dataplane.channel``: msgpack frames over a socket pair, never
NATS) with ``DataPlaneGroup`` (``host.dataplane.group``): every component
start, scale, stop and route change goes to each member; a member that dies
is started again and given the host's current components and routes before it
is handed connections. Members open their own NATS connections with the host's
credentials (keyvalue, calls to components on other hosts, artifacts), and
read compiled components from the host's compile cache on disk, so a member
deserialises a component in tens of milliseconds instead of compiling it.

What a member needs to build its runtime and HTTP front, and how the daemon
builds its own from the same description, is ``host.dataplane.settings``.

A member that is killed cannot answer what it had in flight, but the daemon
holds a copy of each of its connections (``host.dataplane.connections``):
once the member is gone, every request it was serving is answered ``503``
with ``Connection: close``, its idle connections are closed, the ones it had
not started on are served by the daemon, new connections go to the processes
still serving, and the member is started again.
"""
