"""Typed errors raised by the library.

The library never prints or exits; the CLI turns a :class:`SeqattnError` into a one-line
``error: ...`` message on stderr and exits with the error's ``exit_code``:
1 for a runtime failure, 2 for bad usage or bad input.
"""

from __future__ import annotations


class SeqattnError(Exception):
    """Base class of every error seqattn raises on purpose. Runtime failure: exit code 1.

    ``params`` names the library parameters the message speaks of (``decoding.n_best``), so
    that the CLI can say the flags a user typed instead (``--n-best``)."""

    exit_code = 1

    def __init__(self, message: str = "", *, params: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.params = params


class UsageError(SeqattnError):
    """The user asked for something invalid (bad flag value, bad vector, ...). Exit code 2."""

    exit_code = 2


class ConfigError(UsageError):
    """A configuration file or ``--set`` override is invalid."""


class DataError(UsageError):
    """An input file is missing, unreadable, empty, misaligned or not valid UTF-8."""


class CheckpointError(UsageError):
    """A model directory is missing, incomplete, incompatible or corrupt."""


class Terminated(SeqattnError):
    """SIGTERM arrived (``kill``, a job scheduler, the end of a session) during training: handled
    like Ctrl-C, a checkpoint is saved, and the CLI exits 143 (128 + SIGTERM)."""

    exit_code = 143

    def __init__(self) -> None:
        super().__init__("terminated")


#: The user-facing name of each library parameter an error may name (``SeqattnError.params``):
#: the JSON API's field; the CLI's flag is ``--`` and the name with dashes.
OPTION_NAMES = {"decoding.beam_size": "beam", "decoding.n_best": "n_best",
                "decoding.length_penalty": "alpha", "decoding.min_len": "min_len",
                "decoding.max_len": "max_len", "decoding.max_output_len": "max_output_len",
                "decoding.length_norm": "length_norm",
                "view.layer": "layer", "view.heads": "heads", "view.blend": "blend",
                "view.merge": "merge", "view.attention": "attention",
                "extraction.method": "method", "extraction.threshold": "threshold",
                "extraction.sym": "sym"}
