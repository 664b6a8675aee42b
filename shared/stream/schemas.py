"""Response model of `POST /api/v2/network/stream/negotiate` (the OpenAPI spec is generated
from it)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class StreamUrl(BaseModel):
    url: str = Field(
        examples=["wss://qcos.webpubsub.azure.com/client/hubs/qcos?access_token=eyJ..."],
        description="The WebSocket URL to open within 5 minutes; the connection gets the "
        "caller's job updates and backend changes without sending a subscription.",
    )
