"""The Chalice app of the recommendation API: wiring only, routes live in chalicelib/api blueprints."""

from __future__ import annotations

from chalice import Chalice

from chalicelib.api import events, recommendations
from chalicelib.config import APP_NAME

app = Chalice(app_name=APP_NAME)
# Websites call the API from browsers on their own origin.
app.api.cors = True
app.register_blueprint(recommendations.blueprint)
app.register_blueprint(events.blueprint)
