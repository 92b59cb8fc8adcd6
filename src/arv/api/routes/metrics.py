"""Prometheus metrics of the API, the tasks and the queues."""

from fastapi import APIRouter, Response

from arv.api.deps import AdminPrincipal
from arv.metrics import render_metrics

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
def metrics(_admin: AdminPrincipal) -> Response:
    body, content_type = render_metrics()
    return Response(body, media_type=content_type)
