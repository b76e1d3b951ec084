"""The controller: reconciles deployment specs against the observed lattice."""
