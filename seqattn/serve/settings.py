"""The server's settings, checked once here (``seqattn serve`` passes its flags in)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from seqattn.errors import UsageError

API_KEY_ENV = "SEQATTN_API_KEY"


@dataclass(frozen=True)
class ServeSettings:
    """How ``seqattn serve`` listens, whom it answers, and how it batches.

    Requests are gathered for ``batch_wait_ms`` after the first one arrives (and while a batch
    is being decoded), up to ``max_batch_lines`` lines, and decoded together; ``batch_tokens``
    caps the source tokens of one decoding batch inside that, as ``translate --batch-tokens``.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None      # required on any address but loopback, unless no_auth
    no_auth: bool = False
    allow_origins: tuple[str, ...] = ()   # cross-origin callers allowed ("*": any)
    max_lines: int = 64             # lines (or pairs) in one request
    max_chars: int = 2000           # characters in one line (or one side of a pair)
    max_body_bytes: int = 1 << 20
    batch_wait_ms: float = 5.0
    max_batch_lines: int = 64
    batch_tokens: int = 4096
    max_beam: int = 16              # no request may ask for a larger beam
    max_queued_lines: int = 4096    # past this many waiting lines a request gets 503

    def __post_init__(self) -> None:
        for name in ("max_lines", "max_chars", "max_body_bytes", "max_batch_lines",
                     "batch_tokens", "max_beam", "max_queued_lines"):
            if getattr(self, name) < 1:
                raise UsageError(f"serve.{name} must be at least 1, got {getattr(self, name)}",
                                 params=(f"serve.{name}",))
        if not 0 <= self.batch_wait_ms <= 1000:
            raise UsageError(f"serve.batch_wait_ms must be within [0, 1000] ms, got "
                             f"{self.batch_wait_ms}", params=("serve.batch_wait_ms",))
        if not 0 <= self.port <= 65535:
            raise UsageError(f"serve.port must be within [0, 65535], got {self.port}",
                             params=("serve.port",))
        if self.api_key is not None and not self.api_key.strip():
            raise UsageError("serve.api_key is empty", params=("serve.api_key",))
        if self.api_key is not None and not (self.api_key.isascii() and
                                             self.api_key.isprintable()):
            raise UsageError("serve.api_key must be printable ASCII (HTTP headers carry "
                             "nothing else safely)", params=("serve.api_key",))
        if self.api_key is not None and self.no_auth:
            raise UsageError("serve.no_auth turns the API key off: give one or the other",
                             params=("serve.no_auth", "serve.api_key"))
        if not is_loopback(self.host) and self.api_key is None and not self.no_auth:
            raise UsageError(
                f"serving on {self.host} (not this machine only) needs an API key: give "
                f"serve.api_key (or set {API_KEY_ENV}), or serve.no_auth to let anyone who can "
                "reach it in", params=("serve.api_key", "serve.no_auth"))
        for origin in self.allow_origins:
            if origin != "*" and not origin.startswith(("http://", "https://")):
                raise UsageError(f"serve.allow_origins: '{origin}' is not an origin such as "
                                 "https://example.org (or *)", params=("serve.allow_origins",))


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
