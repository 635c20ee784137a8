"""The Chalice app of the recommendation API: wiring only, routes live in chalicelib/api blueprints.

CORS is not Chalice's (which would answer every origin): the blueprints
answer the origins each publishable key allows.
"""

from __future__ import annotations

from chalice import Chalice

from chalicelib.api import catalog, chat, docs, events, insights, recommendations, schedule, streams, widget
from chalicelib.config import APP_NAME

# Logs are powertools JSON lines (chalicelib.telemetry), not chalice's plain text.
app = Chalice(app_name=APP_NAME, configure_logs=False)
app.register_blueprint(recommendations.blueprint)
app.register_blueprint(events.blueprint)
app.register_blueprint(catalog.blueprint)
app.register_blueprint(insights.blueprint)
app.register_blueprint(chat.blueprint)
app.register_blueprint(docs.blueprint)
app.register_blueprint(widget.blueprint)
app.register_blueprint(schedule.blueprint)
app.register_blueprint(streams.blueprint)
