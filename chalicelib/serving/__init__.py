"""Serving: ranking maths, answers from the live model, and personalisation from recent events (numpy only)."""
