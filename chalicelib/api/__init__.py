"""The HTTP edge: Chalice blueprints per area and the checks of request input."""
