"""``seqattn serve``: the translation server and attention explorer (see seqattn.serve)."""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from seqattn.cli.app import app, tune_cpu
from seqattn.device import DEVICE_HELP

log = logging.getLogger("seqattn.cli")

EXAMPLES = """
[bold]Examples[/bold]

  seqattn serve -m en-de -m de-en            [dim]# http://127.0.0.1:8000: explorer at /, API docs at /docs[/dim]

  curl -s localhost:8000/v1/translate -H 'content-type: application/json' -d '{"text": "A dog runs.", "align": true}'

  SEQATTN_API_KEY=secret seqattn serve --host 0.0.0.0    [dim]# other machines: a key is required[/dim]

[bold]Exit codes[/bold]: SIGTERM stops taking requests, finishes those in flight and exits 0 (a
server stopped on purpose has not failed); Ctrl-C does the same and exits 130.
"""


@app.command(epilog=EXAMPLES)
def serve(
    model: Annotated[list[str] | None, typer.Option(
        "--model", "-m", show_default=False,
        help="Model directory or shipped model name; repeat for several (requests name them "
             "by directory name; the first is the default) \\[default: en-de].")] = None,
    host: Annotated[str, typer.Option(
        "--host", help="Address to listen on; any but loopback needs --api-key or "
                       "--no-auth.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", help="Port (0: any free one).")] = 8000,
    api_key: Annotated[str | None, typer.Option(
        "--api-key", envvar="SEQATTN_API_KEY", show_default=False,
        help="Require this key on /v1/ requests ('Authorization: Bearer KEY' or 'X-API-Key'); "
             "also from SEQATTN_API_KEY.")] = None,
    no_auth: Annotated[bool, typer.Option(
        "--no-auth", help="Serve a non-loopback address without a key.")] = False,
    allow_origin: Annotated[list[str] | None, typer.Option(
        "--allow-origin", show_default=False,
        help="Let pages from this origin (https://example.org, or *) call the API; repeat "
             "for several \\[default: none: cross-origin requests get 403].")] = None,
    max_lines: Annotated[int, typer.Option(
        "--max-lines", help="Lines (or pairs) in one request.")] = 64,
    max_chars: Annotated[int, typer.Option(
        "--max-chars", help="Characters in one line.")] = 2000,
    batch_wait_ms: Annotated[float, typer.Option(
        "--batch-wait-ms", help="How long the first request of a batch waits for others.")
    ] = 5.0,
    max_batch_lines: Annotated[int, typer.Option(
        "--max-batch-lines", help="Lines decoded together at most (from several requests).")
    ] = 64,
    batch_tokens: Annotated[int, typer.Option(
        "--batch-tokens", help="Source tokens in one decoding batch.")] = 4096,
    max_beam: Annotated[int, typer.Option(
        "--max-beam", help="The largest beam a request may ask for.")] = 16,
    max_queued_lines: Annotated[int, typer.Option(
        "--max-queued-lines", help="Lines waiting for the decoder at most; past it a "
                                   "request gets 503 (retry later).")] = 4096,
    device: Annotated[str, typer.Option("--device", help=DEVICE_HELP)] = "auto",
    precision: Annotated[str, typer.Option(
        "--precision", help="fp32, bf16, or fp16 on CUDA (as translate).")] = "fp32",
    access_log: Annotated[bool, typer.Option(
        "--access-log", help="Log each request on stderr.")] = False,
) -> None:
    """Serve translations and alignments over HTTP, with an attention explorer at /."""
    from seqattn.errors import SeqattnError, UsageError
    from seqattn.serve.settings import ServeSettings

    settings = ServeSettings(host=host, port=port, api_key=api_key, no_auth=no_auth,
                             allow_origins=tuple(allow_origin or ()), max_lines=max_lines,
                             max_chars=max_chars, batch_wait_ms=batch_wait_ms,
                             max_batch_lines=max_batch_lines, batch_tokens=batch_tokens,
                             max_beam=max_beam, max_queued_lines=max_queued_lines)
    try:
        import uvicorn

        from seqattn.serve.api import create_app
    except ImportError as e:
        raise UsageError(f"seqattn serve needs FastAPI and uvicorn ({e.name} is missing): "
                         "pip install 'seqattn[serve]'") from None
    sock = _bind(settings.host, settings.port)  # a taken port fails before the models load
    tune_cpu()
    from seqattn.serve.service import Service

    service = Service.load(model or ["en-de"], device=device, precision=precision,
                           settings=settings)
    host_, port_ = sock.getsockname()[:2]
    shown = f"[{host_}]" if ":" in host_ else host_
    log.info("serving %s on http://%s:%d (explorer at /, API docs at /docs)%s",
             ", ".join(service.models), shown, port_,
             "" if settings.api_key is None else "; /v1/ needs the API key")
    application = create_app(service)
    server = _server_class()(uvicorn.Config(application, log_level="warning",
                                            access_log=access_log, lifespan="on"))
    server.run(sockets=[sock])
    if not server.started:
        raise SeqattnError("the server did not start (see the messages above)")
    batcher = application.state.batcher
    how = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}.get(server.stopped_by, "ended")
    log.info("stopped (%s) after %d lines in %d batches", how, batcher.lines, batcher.batches)
    if server.stopped_by == signal.SIGINT:
        raise typer.Exit(130)


def _bind(host: str, port: int) -> Any:
    import errno
    import socket

    from seqattn.errors import SeqattnError, UsageError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise SeqattnError(f"port {port} on {host} is in use; pick another with "
                               "--port") from None
        raise UsageError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.set_inheritable(True)
    return sock


def _server_class() -> Any:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, but a signal ends it without being raised again afterwards (so
        SIGTERM exits 0 and Ctrl-C 130 through our own exit path)."""

        stopped_by: int | None = None

        def handle_exit(self, sig: int, frame: Any) -> None:
            if self.stopped_by is None:
                self.stopped_by = sig
            super().handle_exit(sig, frame)

        @contextmanager
        def capture_signals(self) -> Iterator[None]:
            handled = (signal.SIGINT, signal.SIGTERM)
            before = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
            try:
                yield
            finally:
                for sig, handler in before.items():
                    signal.signal(sig, handler)

    return Server
