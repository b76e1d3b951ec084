"""The lattice: the only package that talks to NATS."""
