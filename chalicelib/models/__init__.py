"""Models: the artifact format, a read-only store (serving) and a registry of versions (operators)."""
