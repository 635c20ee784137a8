"""Marketing insights from the model and the catalog: target audiences (numpy only)."""
