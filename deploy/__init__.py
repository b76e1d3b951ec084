"""Deployment specs: the schema users write, loaded from YAML (no project imports)."""
