"""The HTTP API of ``seqattn serve`` (FastAPI on uvicorn) and the attention explorer at ``/``.

Endpoints (the OpenAPI page at ``/docs`` documents the fields):

* ``POST /v1/translate`` — ``{"text": "..."}`` or ``{"texts": [...]}`` plus options → one
  record per line, as ``seqattn translate --format jsonl`` (``align: true``) writes it;
* ``POST /v1/align`` — ``{"pairs": [["source", "target"], ...]}`` → ``seqattn align -f jsonl``;
* ``GET /v1/models``, ``GET /health``.

Every error is JSON ``{"error": "<one line>"}`` with a 4xx status: 400 malformed JSON, 401 no
or wrong API key, 403 a cross-origin caller not allowed, 404 unknown model or path, 413 a
request over the limits, 422 an invalid option. Nothing a client sends names a file: models
are the ones loaded at start, by name.
"""

from __future__ import annotations

import hmac
import logging
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from seqattn.errors import SeqattnError
from seqattn.serve.batcher import Batcher
from seqattn.serve.service import AlignOptions, Service, TranslateOptions, UnknownModel
from seqattn.serve.settings import ServeSettings

log = logging.getLogger("seqattn.serve")

#: The JSON field of each library parameter an error may name (``SeqattnError.params``).
FIELDS = {"decoding.beam_size": "beam", "decoding.n_best": "n_best",
          "decoding.length_penalty": "alpha", "decoding.min_len": "min_len",
          "decoding.max_len": "max_len", "decoding.max_output_len": "max_output_len",
          "view.layer": "layer", "view.heads": "heads", "view.blend": "blend",
          "view.merge": "merge", "extraction.method": "method",
          "extraction.threshold": "threshold", "extraction.sym": "sym"}
OPEN_PATHS = ("/", "/health", "/docs", "/openapi.json", "/static/")  # no API key needed


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")   # a misspelt option is an error, not ignored


class TranslateRequest(_Strict):
    """Translate ``text`` (one line) or ``texts`` (a list of lines); each line gets one record.
    Options left out take the model's settings, as on the command line."""

    text: str | None = None
    texts: list[str] | None = None
    model: str | None = Field(None, description="A loaded model's name (default: the first).")
    beam: int | None = Field(None, description="Beam size; 1 = greedy.")
    n_best: int = Field(1, description="Hypotheses per line (under 'nbest' when > 1).")
    alpha: float | None = Field(None, description="GNMT length penalty α.")
    min_len: int | None = None
    max_len: int | None = None
    max_output_len: int | None = None
    align: bool = Field(False, description="Words, pieces, Pharaoh alignment and links.")
    attention: bool = Field(False, description="The soft word attention matrix (with align).")
    check: bool = Field(False, description="The evidence card (omissions, repeats, ...).")
    layer: int | None = None
    heads: str | None = Field(None, description="mean, max or a head number.")
    shift_att: bool | None = None
    blend: str | None = Field(None, description="LAYER:HEADS:WEIGHT or none.")
    copy_numbers: bool = True
    split: bool = True
    caps: bool = True


class AlignRequest(_Strict):
    """Force-align given (source, target) pairs, as ``seqattn align`` does."""

    pairs: list[tuple[str, str]]
    model: str | None = None
    reverse_model: str | None = Field(None, description="A loaded target→source model: "
                                                        "align both ways and symmetrize.")
    method: str | None = None
    threshold: float | None = None
    sym: str | None = None
    merge: str = "sum"
    layer: int | None = None
    heads: str | None = None
    shift_att: bool | None = None
    blend: str | None = None
    check: bool = False


def create_app(service: Service, settings: ServeSettings | None = None) -> FastAPI:
    """The ASGI application serving ``service`` under ``settings``."""
    settings = settings or ServeSettings()
    batcher = Batcher(service.run, settings.batch_wait_ms / 1000, settings.max_batch_lines)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="seqattn", lifespan=lifespan,
                  description="Translations and word alignments that show their attention.")
    app.state.batcher = batcher
    _guard(app, settings)
    _errors(app)

    @app.post("/v1/translate")
    async def translate(req: TranslateRequest) -> dict[str, Any]:
        lines = _lines(req, settings)
        fields = req.model_dump(exclude={"text", "texts", "model"})
        plan = service.translate_plan(req.model, TranslateOptions(**fields))
        records = await batcher.submit(plan, lines)
        return {"model": plan.model, "translations": _renumbered(records)}

    @app.post("/v1/align")
    async def align(req: AlignRequest) -> dict[str, Any]:
        _check_size(req.pairs, settings, "pairs", sides=True)
        plan = service.align_plan(req.model, AlignOptions(**req.model_dump(
            exclude={"pairs", "model"})))
        records = await batcher.submit(plan, [tuple(p) for p in req.pairs])
        return {"model": plan.model, "alignments": _renumbered(records)}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"models": service.describe()}

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "models": list(service.models),
                "batches": batcher.batches, "lines": batcher.lines}

    static = resources.files("seqattn.serve") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    @app.get("/", include_in_schema=False)
    async def explorer() -> FileResponse:
        return FileResponse(str(static / "index.html"))

    return app


def _lines(req: TranslateRequest, settings: ServeSettings) -> list[str]:
    if (req.text is None) == (req.texts is None):
        raise _Http(422, "give 'text' (one line) or 'texts' (a list of lines), not both")
    lines = [req.text] if req.text is not None else list(req.texts or [])
    _check_size(lines, settings, "texts")
    return lines


def _check_size(items: list[Any], settings: ServeSettings, what: str,
                sides: bool = False) -> None:
    if len(items) > settings.max_lines:
        raise _Http(413, f"{len(items)} {what} in one request; this server takes at most "
                         f"{settings.max_lines} (--max-lines)")
    for k, item in enumerate(items):
        for text in (item if sides else (item,)):
            if len(text) > settings.max_chars:
                raise _Http(413, f"{what}[{k}] has {len(text)} characters; this server takes "
                                 f"at most {settings.max_chars} a line (--max-chars)")


def _renumbered(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ids count within the request (a batch mixes requests)."""
    for k, rec in enumerate(records):
        rec["id"] = k
    return records


class _Http(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": " ".join(str(message).split())}, status_code=status,
                        headers=headers)


def _errors(app: FastAPI) -> None:
    """Every failure as ``{"error": one line}``: never a traceback, never an HTML page."""

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        if first.get("type") == "json_invalid":
            return _error(400, f"malformed JSON: {first.get('ctx', {}).get('error', '')}")
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        if not where and first.get("type") in ("missing", "model_attributes_type",
                                                "dict_type"):
            return _error(400, "the request body must be a JSON object")
        return _error(422, f"{where}: {first.get('msg', 'invalid')}" if where
                      else first.get("msg", "invalid request"))

    @app.exception_handler(StarletteHTTPException)
    async def http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, exc.detail if isinstance(exc.detail, str)
                      else "request failed")

    @app.exception_handler(_Http)
    async def ours(request: Request, exc: _Http) -> JSONResponse:
        return _error(exc.status, str(exc))

    @app.exception_handler(UnknownModel)
    async def unknown(request: Request, exc: UnknownModel) -> JSONResponse:
        return _error(404, str(exc))

    @app.exception_handler(SeqattnError)
    async def library(request: Request, exc: SeqattnError) -> JSONResponse:
        message = str(exc)
        for param in exc.params:
            if param in FIELDS:
                message = message.replace(param, FIELDS[param])
        return _error(422 if exc.exit_code == 2 else 500, message)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("internal error on %s: %s: %s", request.url.path, type(exc).__name__, exc,
                  exc_info=exc)
        return _error(500, f"internal error: {type(exc).__name__} (logged by the server)")


def _guard(app: FastAPI, settings: ServeSettings) -> None:
    """The API key, cross-origin callers, and the body size, checked before anything else."""
    key = settings.api_key.encode() if settings.api_key else None
    allowed = set(settings.allow_origins)
    if allowed:  # added first, so it runs inside the guard (the last added runs first)
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=sorted(allowed),
                           allow_methods=["GET", "POST"],
                           allow_headers=["content-type", "authorization", "x-api-key"])

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Any:
        origin = request.headers.get("origin")
        own = f"{request.url.scheme}://{request.headers.get('host', '')}"
        cors = origin is not None and origin != own
        if cors and "*" not in allowed and origin not in allowed:
            return _error(403, f"cross-origin request from {origin} refused (allow it with "
                               "--allow-origin)")
        if request.method == "OPTIONS" and cors:   # a preflight (no key is sent with it)
            return await call_next(request)
        path = request.url.path
        if key is not None and not (path in OPEN_PATHS or path.startswith("/static/")):
            given = request.headers.get("x-api-key") or _bearer(request)
            if given is None or not hmac.compare_digest(given.encode(), key):
                return _error(401, "missing or wrong API key (send it as 'Authorization: "
                                   "Bearer KEY' or 'X-API-Key: KEY')",
                              headers={"WWW-Authenticate": "Bearer"})
        size = request.headers.get("content-length")
        if size is not None and size.isdigit() and int(size) > settings.max_body_bytes:
            return _error(413, f"request body of {size} bytes; this server takes at most "
                               f"{settings.max_body_bytes}")
        return await call_next(request)



def _bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    return auth[7:] if auth.lower().startswith("bearer ") else None
