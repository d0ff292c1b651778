"""CLI conventions every command inherits: lazy imports, stderr/stdout split, exit codes."""

import os
import subprocess
import sys
import textwrap

import pytest

from seqattn.cli import run

COMMANDS = ["train", "translate", "align", "evaluate", "explain"]


def _python(code: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=120)


@pytest.mark.parametrize("args", [["--help"], ["evaluate", "--help"], ["explain", "--help"]])
def test_help_does_not_import_torch(args):
    proc = _python(f"""
        import sys
        from seqattn.cli import run
        code = run({args!r})
        assert code == 0, code
        heavy = [m for m in ("torch", "sacrebleu", "sentencepiece") if m in sys.modules]
        assert not heavy, heavy
        print("ok")
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("ok")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_examples(command, capsys):
    assert run([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "Examples" in out and f"seqattn {command}" in out


def test_version(capsys):
    assert run(["--version"]) == 0
    assert capsys.readouterr().out.startswith("seqattn ")


def test_usage_error_is_one_line_on_stderr_exit_2(capsys):
    assert run(["explain", "--digits", "-3"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "--digits" in lines[0]


def test_unknown_command_exit_2(capsys):
    assert run(["bogus"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: No such command 'bogus'")


def test_library_error_is_one_line_and_debug_shows_traceback(capsys):
    assert run(["explain", "--query", "1,x", "-k", "1,0"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: --query holds 'x', which is not a number"
    assert run(["explain", "--query", "1,x", "-k", "1,0", "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().endswith("which is not a number")


def test_debug_from_environment():
    proc = subprocess.run([sys.executable, "-m", "seqattn", "explain", "--query", "x", "-k", "1"],
                          capture_output=True, text=True, env={**os.environ, "SEQATTN_DEBUG": "1"})
    assert proc.returncode == 2 and "Traceback" in proc.stderr


def test_errors_are_plain_when_not_a_tty_or_no_color():
    proc = subprocess.run([sys.executable, "-m", "seqattn", "explain", "--query", "x", "-k", "1"],
                          capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1",
                                                               "FORCE_COLOR": ""})
    assert proc.returncode == 2
    assert "\x1b[" not in proc.stderr and proc.stdout == ""
    assert proc.stderr == "error: --query holds 'x', which is not a number\n"


def test_closed_pipe_exits_quietly():
    # 3000 keys make a table far larger than the pipe buffer; the reader takes one line.
    keys = " ".join(f"-k {i},1" for i in range(3000))
    proc = subprocess.run(f"'{sys.executable}' -m seqattn explain --query 1,1 {keys} | head -1",
                          shell=True, capture_output=True, text=True, executable="/bin/bash")
    assert proc.returncode == 0
    assert proc.stdout.startswith("dot:")
    assert proc.stderr == ""


def test_keyboard_interrupt_exits_130(monkeypatch, capsys):
    import seqattn.explain as lib

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(lib, "explain_step", interrupted)
    assert run(["explain"]) == 130
    assert capsys.readouterr().err.strip() == "error: interrupted"


def test_unexpected_error_is_one_line(monkeypatch, capsys):
    import seqattn.explain as lib

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(lib, "explain_step", broken)
    assert run(["explain"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: internal error: RuntimeError: boom")


def test_os_error_is_reported_with_the_file(monkeypatch, capsys):
    import seqattn.explain as lib

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device", "/tmp/out.txt")

    monkeypatch.setattr(lib, "explain_step", full)
    assert run(["explain"]) == 1
    assert capsys.readouterr().err.strip() == "error: No space left on device: '/tmp/out.txt'"


def test_console_script_and_module_agree():
    a = subprocess.run([sys.executable, "-m", "seqattn", "explain", "-f", "json"],
                       capture_output=True, text=True)
    assert a.returncode == 0 and a.stdout.startswith('{"score": "dot"')


def test_help_paragraphs_are_reflowed_not_ragged():
    """A docstring's own line breaks would survive into --help (Rich keeps them) and leave
    short, ragged lines at any terminal width: every paragraph reaches Rich as one line."""
    import typer

    from seqattn.cli import app

    commands = typer.main.get_command(app).commands
    assert {"explain", "evaluate", "train", "serve"} <= set(commands)
    for name, command in commands.items():
        for paragraph in (command.help or "").split("\n\n"):
            assert "\n" not in paragraph.strip(), (name, paragraph[:60])
    assert "one decoder query scored against three encoder states." in commands["explain"].help
