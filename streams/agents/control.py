"""control.models: a newly published snapshot makes this worker reload at once."""

from __future__ import annotations

import logging

from streams.app import app
from streams.topics import control_models, live_snapshot

log = logging.getLogger(__name__)


@app.agent(control_models)
async def reload_model(stream):
    async for announcement in stream:
        snap = live_snapshot.refresh(force=True)
        log.info("control: %s announced, serving %s", announcement.get("model_id"), snap.model_id)
