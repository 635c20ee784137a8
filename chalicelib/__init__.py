"""Serving library of the recommendation API (numpy only; training lives in chalicelib.training)."""
