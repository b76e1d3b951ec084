"""The ``lattice`` command: the operator's view of a lattice.

The top layer: one module per noun (hosts, components, apps, links, ...), each
thin over the package it drives. Nothing else in the project imports ``cli``,
and importing the host daemon never loads click.
"""
