"""The HTTP API of ``seqattn serve`` (FastAPI on uvicorn) and the attention explorer at ``/``.

Endpoints (the OpenAPI page at ``/docs`` documents the fields):

* ``POST /v1/translate`` — ``{"text": "..."}`` or ``{"texts": [...]}`` plus options → one
  record per line, as ``seqattn translate --format jsonl`` (``align: true``) writes it;
* ``POST /v1/align`` — ``{"pairs": [["source", "target"], ...]}`` → ``seqattn align -f jsonl``;
* ``GET /v1/models``, ``GET /health``.

Every error is JSON ``{"error": "<one line>"}``: 400 malformed JSON, 401 no or wrong API key,
403 a caller's host or origin not allowed, 404 unknown model or path, 411 a POST without
Content-Length, 413 a request over the limits, 422 an invalid option, 503 too many lines
waiting; an unexpected failure is a 500 with one line (the traceback goes to the server's
log). Nothing a client sends names a file: models are the ones loaded at start, by name.
"""

from __future__ import annotations

import dataclasses
import hmac
import logging
import typing
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, create_model
from starlette.exceptions import HTTPException as StarletteHTTPException

from seqattn.errors import OPTION_NAMES, SeqattnError
from seqattn.serve.batcher import Batcher, Busy
from seqattn.serve.service import AlignOptions, Service, TranslateOptions, UnknownModel
from seqattn.serve.settings import ServeSettings, is_loopback

log = logging.getLogger(__name__)
OPEN_PATHS = ("/", "/health", "/docs", "/openapi.json")  # and /static/: no API key needed
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def _request_model(name: str, options: type, doc: str, **own: Any) -> type[BaseModel]:
    """A request body: ``own`` fields plus every field of the ``options`` dataclass, with its
    type, default and description (each option is declared once, in the library). Unknown
    fields, NaN and infinities are errors."""
    hints = typing.get_type_hints(options)
    fields: dict[str, Any] = {
        f.name: (hints[f.name], Field(f.default, description=f.metadata.get("doc")))
        for f in dataclasses.fields(options)}
    config = ConfigDict(extra="forbid", allow_inf_nan=False)
    return create_model(name, __config__=config, __doc__=doc, **own, **fields)


_MODEL = (str | None, Field(None, description="A loaded model's name [the first one]."))
TranslateRequest = _request_model(
    "TranslateRequest", TranslateOptions,
    "Translate `text` (one line) or `texts` (a list of lines); each line gets one record. "
    "Options left out take the model's settings, as on the command line.",
    text=(str | None, Field(None, description="One line to translate.")),
    texts=(list[str] | None, Field(None, description="Lines to translate.")), model=_MODEL)
AlignRequest = _request_model(
    "AlignRequest", AlignOptions, "Force-align given (source, target) pairs, as `seqattn "
    "align` does.", pairs=(list[tuple[str, str]], Field(description="[source, target] pairs.")),
    model=_MODEL)


def create_app(service: Service) -> FastAPI:
    """The ASGI application serving ``service`` (under its settings)."""
    settings = service.settings
    batcher = Batcher(service.run, lambda plan: plan.batch_key(), settings.batch_wait_ms / 1000,
                      settings.max_batch_lines, settings.max_queued_lines)

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
    async def translate(req: TranslateRequest) -> dict[str, Any]:  # type: ignore[valid-type]
        lines = _lines(req, settings)
        fields = req.model_dump(exclude={"text", "texts", "model"})  # type: ignore[attr-defined]
        plan = service.translate_plan(req.model, TranslateOptions(**fields))  # type: ignore
        records = await batcher.submit(plan, lines)
        return {"model": plan.model, "translations": _renumbered(records)}

    @app.post("/v1/align")
    async def align(req: AlignRequest) -> dict[str, Any]:  # type: ignore[valid-type]
        pairs = [tuple(p) for p in req.pairs]  # type: ignore[attr-defined]
        _check_size(pairs, settings, "pairs", sides=True)
        fields = req.model_dump(exclude={"pairs", "model"})  # type: ignore[attr-defined]
        plan = service.align_plan(req.model, AlignOptions(**fields))  # type: ignore
        records = await batcher.submit(plan, pairs)
        return {"model": plan.model, "alignments": _renumbered(records)}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"models": service.describe()}

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok" if batcher.alive else "stopping", "models": list(service.models),
                "batches": batcher.batches, "lines": batcher.lines, "queued": batcher.queued}

    static = resources.files("seqattn.serve") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    @app.get("/", include_in_schema=False)
    async def explorer() -> FileResponse:
        return FileResponse(str(static / "index.html"))

    return app


def _lines(req: Any, settings: ServeSettings) -> list[str]:
    if (req.text is None) == (req.texts is None):
        which = "not both" if req.text is not None else "one of them"
        raise _Http(422, f"give 'text' (one line) or 'texts' (a list of lines), {which}")
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
            if "\n" in text or "\r" in text:   # the CLI would read several lines
                raise _Http(422, f"{what}[{k}] holds a line break: send one line per item "
                                 "(texts takes a list)")


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
                      else "request failed", headers=getattr(exc, "headers", None))

    @app.exception_handler(Busy)
    async def busy(request: Request, exc: Busy) -> JSONResponse:
        return _error(503, f"busy: {exc}", headers={"Retry-After": "1"})

    @app.exception_handler(_Http)
    async def ours(request: Request, exc: _Http) -> JSONResponse:
        return _error(exc.status, str(exc))

    @app.exception_handler(UnknownModel)
    async def unknown(request: Request, exc: UnknownModel) -> JSONResponse:
        return _error(404, str(exc))

    @app.exception_handler(SeqattnError)
    async def library(request: Request, exc: SeqattnError) -> JSONResponse:
        message = str(exc)
        for param, name in OPTION_NAMES.items():  # the request's field names, not ours
            message = message.replace(param, name)
        return _error(422 if exc.exit_code == 2 else 500, message)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("internal error on %s: %s: %s", request.url.path, type(exc).__name__, exc,
                  exc_info=exc)
        return _error(500, f"internal error: {type(exc).__name__} (logged by the server)")


def _guard(app: FastAPI, settings: ServeSettings) -> None:
    """Who may call, checked before anything else: the Host (on loopback only this machine's
    names: a page whose domain re-resolves to 127.0.0.1, DNS rebinding, is refused), the
    caller's origin, the API key, and the body size (a POST must say its Content-Length)."""
    key = settings.api_key.encode() if settings.api_key else None
    allowed = set(settings.allow_origins)
    local = is_loopback(settings.host)

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Any:
        host = request.headers.get("host", "")
        if local and host.rsplit(":", 1)[0] not in LOOPBACK_NAMES and host not in allowed:
            return _error(403, f"host '{host}' refused: this server answers on its loopback "
                               "address only (--host)")
        origin = request.headers.get("origin")
        cors = origin is not None and origin != f"{request.url.scheme}://{host}"
        if cors and "*" not in allowed and origin not in allowed:
            return _error(403, f"cross-origin request from {origin} refused (allow it with "
                               "--allow-origin)")
        path = request.url.path
        if key is not None and not (path in OPEN_PATHS or path.startswith("/static/")):
            given = request.headers.get("x-api-key") or _bearer(request)
            if given is None or not hmac.compare_digest(given.encode("latin-1"), key):
                return _error(401, "missing or wrong API key (send it as 'Authorization: "
                                   "Bearer KEY' or 'X-API-Key: KEY')",
                              headers={"WWW-Authenticate": "Bearer"})
        if request.method == "POST":
            size = request.headers.get("content-length")
            if size is None or not size.isdigit():
                return _error(411, "send the body with a Content-Length header")
            if int(size) > settings.max_body_bytes:
                return _error(413, f"request body of {size} bytes; this server takes at most "
                                   f"{settings.max_body_bytes}")
        return await call_next(request)

    if allowed:  # added last, so it runs first: preflights, and CORS headers on every answer
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=sorted(allowed),
                           allow_methods=["GET", "POST"],
                           allow_headers=["content-type", "authorization", "x-api-key"])


def _bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    return auth[7:] if auth.lower().startswith("bearer ") else None
