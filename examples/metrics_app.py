"""Session and store metrics for Prometheus, through OpenTelemetry.

Usage:
    pip install -e '.[otel]' opentelemetry-sdk opentelemetry-exporter-prometheus uvicorn
    export SESSION_SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
    uvicorn --app-dir examples metrics_app:app

    curl -k -c jar -b jar -X POST http://127.0.0.1:8000/cart/apple   # -k: local http, see below
    curl http://127.0.0.1:8000/metrics | grep fastapi_sessions

Run locally over plain http, set SESSION_COOKIE_SECURE=false so that curl sends the cookie back.
Point Prometheus at /metrics (see docs/metrics.md for the instruments and the names they get).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI
from opentelemetry import metrics
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from prometheus_client import make_asgi_app
from pydantic import BaseModel

from fastapi_sessions import SessionManager

# The app owns the SDK: one MeterProvider for the process, here read by Prometheus. It may also be set
# after the session manager is built (in a lifespan, say): the library's instruments follow it.
reader = PrometheusMetricReader()
resource = Resource.create({"service.name": "shop"})
metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))


class ShopSession(BaseModel):
    cart: list[str] = []


sessions = SessionManager(ShopSession)  # SESSION_METRICS=auto: recorded, as OpenTelemetry is here
app = FastAPI()
sessions.install(app)
app.mount("/metrics", make_asgi_app())  # prometheus_client's exposition of the default registry
Session = Annotated[ShopSession, Depends(sessions.get_session)]


@app.get("/cart")
async def show(session: Session) -> list[str]:
    return session.cart


@app.post("/cart/{item}")
async def add(item: str, session: Session) -> list[str]:
    session.cart.append(item)
    return session.cart
