"""One graph through the server's queue: enqueue, follow it (progress from the executed nodes), cancel
it on SIGTERM or timeout, and bring the output images home, checked."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from PIL import Image

from ai_wallpaper.config.backend_settings import InvokeAISettings
from ai_wallpaper.core import log
from ai_wallpaper.core.errors import Cancelled, RunError
from ai_wallpaper.render.invokeai.client import InvokeAIClient
from ai_wallpaper.render.invokeai.graphs import Graph
from ai_wallpaper.render.stages.common import CancelCheck

logger = log.get(__name__)
ACTIVE = ("pending", "in_progress")
# A server may stop answering for a moment (a restart, a busy event loop); this long it is waited for.
OUTAGE_SECONDS = 15.0


@dataclass
class QueueRun:
    """What run.json records of one queue item."""

    item_id: int
    batch_id: str
    graph: dict[str, Any]
    session_id: str | None = None
    server_seconds: float | None = None  # started_at -> completed_at as the server saw it
    ready_after: dict[str, float] = field(default_factory=dict)  # output node -> seconds until it was seen

    def to_json(self) -> dict[str, Any]:
        return {"item_id": self.item_id, "batch_id": self.batch_id, "session_id": self.session_id,
                "server_seconds": self.server_seconds, "graph": self.graph}


def run_graph(client: InvokeAIClient, cfg: InvokeAISettings, graph: Graph, graph_id: str,
              outputs: Mapping[str, str], progress: Callable[[int, int], None],
              cancel: CancelCheck) -> tuple[QueueRun, dict[str, Image.Image]]:
    """Run `graph`; return its queue record and the images of `outputs` (name -> node id)."""
    sent = graph.to_json(graph_id)
    queued = client.enqueue(sent)
    run = QueueRun(queued.item_id, queued.batch_id, sent)
    logger.info("invokeai.enqueued", graph=graph_id, item_id=run.item_id, batch_id=run.batch_id)
    item = _follow(client, cfg, run, outputs, len(sent["nodes"]), progress, cancel)
    session = item.get("session")
    run.session_id = item.get("session_id") if isinstance(item.get("session_id"), str) else None
    run.server_seconds = _server_seconds(item)
    images = {name: _download(client, _image_name(client, session, node, run.item_id), node)
              for name, node in outputs.items()}
    return run, images


def _follow(client: InvokeAIClient, cfg: InvokeAISettings, run: QueueRun, outputs: Mapping[str, str],
            total: int, progress: Callable[[int, int], None], cancel: CancelCheck) -> dict[str, Any]:
    started = time.monotonic()
    deadline = started + cfg.stage_timeout_minutes * 60
    silent_since: float | None = None
    while True:
        if cancel():
            _cancel(client, run.item_id, "run cancelled")
            raise Cancelled(f"run cancelled (InvokeAI queue item {run.item_id} cancelled)")
        if time.monotonic() > deadline:
            _cancel(client, run.item_id, "stage timeout")
            raise RunError(f"InvokeAI server {client.url} did not finish queue item {run.item_id} within "
                           f"{cfg.stage_timeout_minutes} min (cancelled it)",
                           hint="raise invokeai.stage_timeout_minutes, or check the server's queue")
        try:
            item = client.item(run.item_id)
            silent_since = None
        except RunError as exc:
            silent_since = silent_since or time.monotonic()
            if time.monotonic() - silent_since > OUTAGE_SECONDS:
                raise RunError(f"InvokeAI server {client.url} went away during queue item {run.item_id}: "
                               f"{exc.message}", hint="check the server's log; the next run starts afresh") from exc
            time.sleep(cfg.poll_seconds)
            continue
        status = item["status"]
        session = item.get("session") if isinstance(item.get("session"), dict) else {}
        executed = session.get("executed") if isinstance(session, dict) else None
        done = len(executed) if isinstance(executed, list) else 0
        progress(min(done, total), total)
        for node in outputs.values():
            if node not in run.ready_after and _prepared(session, node):
                run.ready_after[node] = time.monotonic() - started
        if status == "completed":
            return item
        if status == "failed":
            raise RunError(f"InvokeAI server {client.url} failed queue item {run.item_id}: "
                           f"{item.get('error_type') or 'error'}: {str(item.get('error_message') or '')[:400]}",
                           hint="the server's log has the traceback")
        if status == "canceled":
            raise RunError(f"InvokeAI queue item {run.item_id} was cancelled on the server (from its UI, "
                           "or the server restarted)")
        if status not in ACTIVE:
            raise RunError(f"InvokeAI server {client.url} reports an unknown status {status!r} for queue item "
                           f"{run.item_id}")
        time.sleep(cfg.poll_seconds)


def _cancel(client: InvokeAIClient, item_id: int, why: str) -> None:
    try:
        client.cancel(item_id)
        logger.warning("invokeai.cancelled", item_id=item_id, reason=why)
    except RunError as exc:  # the run fails anyway; the server's own timeout will end the item
        logger.warning("invokeai.cancel_failed", item_id=item_id, error=exc.message)


def _prepared(session: Any, node: str) -> str | None:
    """The id the server gave the executed copy of source node `node`, once it has a result."""
    if not isinstance(session, dict):
        return None
    mapping, results = session.get("source_prepared_mapping"), session.get("results")
    if not isinstance(mapping, dict) or not isinstance(results, dict):
        return None
    for prepared in mapping.get(node) or ():
        if prepared in results:
            return str(prepared)
    return None


def _image_name(client: InvokeAIClient, session: Any, node: str, item_id: int) -> str:
    prepared = _prepared(session, node)
    result = session["results"][prepared] if prepared else None
    image = result.get("image") if isinstance(result, dict) else None
    name = image.get("image_name") if isinstance(image, dict) else None
    if not isinstance(name, str) or not name or "/" in name:
        raise RunError(f"InvokeAI server {client.url} finished queue item {item_id} without an image from "
                       f"node {node!r}", hint="the server's answer was not what InvokeAI 6 sends")
    return name


def _download(client: InvokeAIClient, name: str, node: str) -> Image.Image:
    data = client.image(name)
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return img.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise RunError(f"InvokeAI server {client.url} sent something that is not an image for {node!r} "
                       f"({len(data)} bytes)") from exc


def _server_seconds(item: dict[str, Any]) -> float | None:
    try:
        start = datetime.fromisoformat(str(item["started_at"]))
        end = datetime.fromisoformat(str(item["completed_at"]))
    except (KeyError, TypeError, ValueError):
        return None
    return round((end - start).total_seconds(), 3)


def upload(client: InvokeAIClient, image: Image.Image, stage: str) -> str:
    """Send a stage's input image (fast PNG: it is an intermediate on the server)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return client.upload_image(buffer.getvalue(), f"ai-wallpaper-{stage}.png")
