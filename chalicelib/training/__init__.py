"""Training: scipy and implicit live here and are never imported by the serving path."""
