"""The Label Studio ML backend protocol as a thin layer over the served model (the routes of
label-studio-ml-backend's ``label_studio_ml/api.py``): ``GET /health``, ``POST /setup`` (the
project's labeling config mapped to the model's classes), ``POST /predict`` (one brush mask per
class and task, with a score and the model version), ``POST /webhook`` (annotations in, training
started: :mod:`endopat.serve.learning`); plus ``GET /trainings``. Every bad request is a 4xx JSON
``{"error": ...}``; anything else a 500 JSON without a traceback (the server's log has it)."""

from __future__ import annotations

import base64
import hmac
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from endopat.annotation.write import brush_rle
from endopat.checkpoints import load_checkpoint
from endopat.errors import EndopatError
from endopat.io import output_folder
from endopat.serve import labels
from endopat.serve.images import ImageSource, RequestError
from endopat.serve.learning import Learner
from endopat.serve.model import ServedModel

log = logging.getLogger("endopat.serve")
MAX_BODY = 64 * 1024 * 1024


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class SetupRequest(_Open):
    project: str | int | None = None
    schema_: str | None = Field(None, alias="schema")  # Label Studio's key

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class PredictRequest(_Open):
    tasks: list[dict[str, Any]]
    label_config: str | None = None
    project: str | int | None = None


class WebhookRequest(_Open):
    action: str


class SuggestRequest(BaseModel):
    project: int
    n: int = Field(10, ge=1, le=1000)


@dataclass
class Server:
    served: ServedModel
    images: ImageSource
    learner: Learner | None = None
    aliases: dict[str, str] = field(default_factory=dict)
    basic_auth: tuple[str, str] | None = None
    token: str | None = None
    configs: dict[str, str] = field(default_factory=dict)  # project -> labeling config (from /setup)

    def target(self, config: str | None, project: str | int | None) -> labels.Target:
        config = config or self.configs.get(str(project).split(".", 1)[0])
        if not config:
            raise RequestError(400, "no label_config in the request and none from /setup for this project")
        return labels.parse(config, labels.foreground(self.served.labels), self.aliases)

    def predict(self, body: PredictRequest) -> dict:
        target = self.target(body.label_config, body.project)
        if not body.tasks:
            return {"results": []}
        pictures = [self.images.decode(*self.images.task_image(t)) for t in body.tasks]
        predictions, version = self.served.predict(pictures)
        results, ids = [], self.served.labels.id_of
        for task, picture, p in zip(body.tasks, pictures, predictions):
            h, w = picture.shape[:2]
            regions = {cls: p.mask == ids(cls) for cls in target.labels}
            result = [{"id": f"endopat-{task.get('id', 0)}-{cls}", "from_name": target.from_name,
                       "to_name": target.to_name, "type": "brushlabels", "original_width": w, "original_height": h,
                       "image_rotation": 0, "readonly": False, "score": p.score,
                       "value": {"format": "rle", "rle": brush_rle(regions[cls]), "brushlabels": [value]}}
                      for cls, value in target.labels.items() if regions[cls].any()]
            results.append({"result": result, "score": p.score, "model_version": version})
        return {"results": results}

    def authorised(self, header: str | None) -> bool:
        if self.basic_auth is None and self.token is None:
            return True
        if not header:
            return False
        kind, _, value = header.partition(" ")
        if self.token is not None and kind.lower() in ("bearer", "token"):
            return hmac.compare_digest(value.strip(), self.token)
        if self.basic_auth is not None and kind.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value.strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            return hmac.compare_digest(user, self.basic_auth[0]) and hmac.compare_digest(password, self.basic_auth[1])
        return False


def create_app(server: Server):
    """The FastAPI application of ``server``: its guards, then its routes."""
    from fastapi import FastAPI  # the serve extra: imported when a server is made

    app = FastAPI(title="endopat", docs_url=None, redoc_url=None, openapi_url=None)
    _guards(app, server)
    _routes(app, server)
    return app


def _guards(app, server: Server) -> None:
    """Authentication, the body-size limit, and every error as a JSON answer."""
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if not server.authorised(request.headers.get("authorization")):
            return JSONResponse({"error": "unauthorised"}, 401, {"WWW-Authenticate": 'Basic realm="endopat"'})
        length = request.headers.get("content-length")
        if length and (not length.isdigit() or int(length) > MAX_BODY):
            return JSONResponse({"error": f"request body over {MAX_BODY} bytes"}, 413)
        try:
            return await call_next(request)
        except RequestError as err:
            return JSONResponse({"error": str(err)}, err.status)
        except Exception as err:  # noqa: BLE001 - a client never sees a traceback; the log has it
            log.exception("request failed")
            return JSONResponse({"error": f"internal error ({err.__class__.__name__}); see the server's log"}, 500)

    @app.exception_handler(RequestError)
    async def request_error(_, err: RequestError):
        return JSONResponse({"error": str(err)}, err.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_, err: RequestValidationError):
        first = err.errors()[0] if err.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return JSONResponse({"error": f"malformed request: {where or 'body'}: {first.get('msg', 'invalid')}"}, 422)


def _learner(server: Server) -> Learner:
    if server.learner is None:
        raise RequestError(400, "this server has no --labeled folder: it does not learn")
    return server.learner


def _routes(app, server: Server) -> None:
    """The protocol's routes, each a call into the server."""

    @app.get("/")
    @app.get("/health")
    def health() -> dict:
        return {"status": "UP", "model_class": "endopat", "model_version": server.served.model_version,
                "training": bool(server.learner and server.learner.training)}

    @app.post("/setup")
    def setup(body: SetupRequest) -> dict:
        # refuses unknown labels now, not at /predict
        labels.parse(body.schema_, labels.foreground(server.served.labels), server.aliases)
        server.configs[str(body.project).split(".", 1)[0]] = body.schema_
        server.images.adopt((body.model_extra or {}).get("hostname"), (body.model_extra or {}).get("access_token"))
        return {"model_version": server.served.model_version}

    @app.post("/predict")
    def predict(body: PredictRequest) -> dict:
        return server.predict(body)

    @app.post("/webhook", status_code=201)
    def webhook(body: WebhookRequest) -> dict:
        return {"status": "ok", "result": _learner(server).webhook(body.action, body.model_extra or {})}

    @app.post("/train", status_code=201)
    def train(body: _Open) -> dict:  # Label Studio before its START_TRAINING webhook
        return {"status": "ok", "result": _learner(server).start_training()}

    @app.post("/suggest", status_code=202)
    def suggest(body: SuggestRequest) -> dict:
        threading.Thread(target=_learner(server).push_next, args=(body.project, body.n), daemon=True).start()
        return {"status": "suggesting", "project": body.project, "n": body.n}

    @app.get("/trainings")
    def trainings() -> list[dict]:
        return server.learner.trainings() if server.learner else []

    @app.get("/metrics")
    def metrics() -> dict:
        return {}


def build_server(checkpoint: str | Path, state: str | Path, labeled: str | Path | None = None,
                 unlabeled: list[Path] = (), image_roots: list[Path] = (), label_studio_url: str | None = None,
                 label_studio_token: str | None = None, init: str | Path | None = None, retrain_every: int = 0,
                 epochs: int = 30, aliases: dict[str, str] | None = None, basic_auth: tuple[str, str] | None = None,
                 token: str | None = None, max_image_pixels: int = 40_000_000, backend: str = "auto",
                 push: int = 0, log=print) -> Server:
    """Everything ``endopat serve`` runs, before it listens: the served model (what ``state``
    says it served last, else ``checkpoint``), the image roots (``labeled``, ``unlabeled`` and
    ``image_roots``) and, with a ``labeled`` folder, the learner."""
    roots = [Path(p) for p in (labeled, *unlabeled, *image_roots) if p is not None]
    for root in roots:
        if not root.exists():
            raise EndopatError(f"{root}: not found (an image root of the server)")
    if Path(checkpoint).suffix.lower() != ".onnx":
        load_checkpoint(checkpoint)  # a bad checkpoint is one line naming it, before anything is written
    state = output_folder(state)
    images = ImageSource([r if r.is_dir() else r.parent for r in roots] + [state / "incoming" / "images"],
                         label_studio_url, label_studio_token, max_image_pixels)
    served = ServedModel(Path(checkpoint), state, backend)
    learner = (Learner(served, output_folder(labeled), images, state, Path(init) if init else None, retrain_every,
                       epochs, log, Path(unlabeled[0]) if unlabeled else None, push, aliases)
               if labeled is not None else None)
    return Server(served, images, learner, dict(aliases or {}), basic_auth, token)
