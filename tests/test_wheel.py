"""The wheel works on its own: built from the project and installed (not editable) into a fresh
venv, ``seqattn translate`` runs with the shipped models it carries, from a directory outside
the checkout, without ``$SEQATTN_MODELS`` and without a package index. An editable install keeps
reading the checkout's ``models/``, and the sdist carries ``models/``.

Builds run on a copy of the project (pip builds in-tree: build/ and *.egg-info stay out of the
checkout). The fresh venvs reach the dev venv's dependencies (torch, ...) through a ``.pth``
line instead of installing them again; a plain path line does not run the dev venv's own ``.pth``
files, so its editable seqattn is not picked up, and each check asserts which seqattn it ran.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BUILD_INPUTS = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "seqattn", "models")
SHIPPED = ("en-de", "de-en", "en-de-rnn", "en-de-rnn-noattn")
BIN = "Scripts" if os.name == "nt" else "bin"

if not (ROOT / "models" / "en-de" / "seqattn.json").is_file():
    pytest.skip("no shipped model in this checkout's models/", allow_module_level=True)


def _env() -> dict[str, str]:
    """The caller's environment without anything that points seqattn or Python elsewhere."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("SEQATTN_MODELS", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _run(*cmd: str | Path, cwd: Path) -> str:
    """Run ``cmd``; its stdout, or a failure that shows stderr."""
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    return proc.stdout


def _fresh_venv(path: Path, dist: Path) -> Path:
    """A new venv with ``dist`` installed (no index, no dependencies), the dev venv's
    site-packages appended to its path; its scripts folder."""
    _run(sys.executable, "-m", "venv", path, cwd=path.parent)
    python = path / BIN / "python"
    _run(python, "-m", "pip", "install", "--no-index", "--no-deps", "--quiet",
         "--disable-pip-version-check", dist, cwd=path.parent)
    purelib = _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                   cwd=path.parent).strip()
    dev = sorted({sysconfig.get_paths()[k] for k in ("purelib", "platlib")})
    Path(purelib, "_seqattn_dev_deps.pth").write_text("\n".join(dev) + "\n", encoding="utf-8")
    return path / BIN


def _build(hook: str, project: Path, out: Path) -> Path:
    """Call the setuptools backend's ``hook`` (PEP 517/660) on ``project``; the file it made."""
    call = f"import sys; from setuptools import build_meta; print(build_meta.{hook}(sys.argv[1]))"
    return out / _run(sys.executable, "-c", call, out, cwd=project).strip().splitlines()[-1]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of what a build reads (nothing of the checkout's build state)."""
    copy = tmp_path_factory.mktemp("project")
    for name in BUILD_INPUTS:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, copy / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, copy / name)
    return copy


@pytest.fixture(scope="module")
def wheel(project, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheelhouse")
    _run(sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation",
         "--no-index", "--quiet", "--disable-pip-version-check", "-w", out, cwd=project)
    (built,) = out.glob("seqattn-*.whl")
    return built


def test_wheel_carries_every_shipped_model(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for model in SHIPPED:
        for part in ("model.safetensors", "spm.model", "config.yaml", "seqattn.json",
                     "README.md"):
            assert f"seqattn/shipped/{model}/{part}" in names
    assert not any(n.startswith("models/") for n in names)   # no top-level "models" package


def test_installed_wheel_translates_offline(wheel, tmp_path):
    scripts = _fresh_venv(tmp_path / "venv", wheel)
    elsewhere = tmp_path / "elsewhere"      # not the checkout, not the venv
    elsewhere.mkdir()
    probe = (
        "import os, seqattn, seqattn.translate as t\n"
        "print(seqattn.__file__)\n"
        "print(t.models_dir())\n"
        "print(t.is_shipped(t.resolve_model(None)))\n"
        f"os.environ['SEQATTN_MODELS'] = {str(elsewhere)!r}\n"
        "print(t.models_dir())\n")
    package, models, shipped, overridden = _run(scripts / "python", "-c", probe,
                                                cwd=elsewhere).splitlines()
    venv = (tmp_path / "venv").resolve()
    assert Path(package).resolve().is_relative_to(venv), package   # not the dev venv's seqattn
    assert Path(models) == Path(package).parent / "shipped"
    assert shipped == "True"                                       # read-only, like models/
    assert Path(overridden) == elsewhere                           # $SEQATTN_MODELS still wins

    german = _run(scripts / "seqattn", "translate", "A dog runs in the park.", cwd=elsewhere)
    assert "Hund" in german
    english = _run(scripts / "seqattn", "translate", "-m", "de-en", "Ein Hund läuft im Park.",
                   cwd=elsewhere)
    assert "dog" in english.lower()


def test_editable_install_reads_the_checkout_models(project, tmp_path):
    out = tmp_path / "editable"
    out.mkdir()
    scripts = _fresh_venv(tmp_path / "venv", _build("build_editable", project, out))
    probe = "import seqattn, seqattn.translate as t; print(seqattn.__file__); print(t.models_dir())"
    package, models = _run(scripts / "python", "-c", probe, cwd=tmp_path).splitlines()
    assert Path(package).resolve() == (project / "seqattn" / "__init__.py").resolve()
    assert Path(models).resolve() == (project / "models").resolve()
    assert not (project / "seqattn" / "shipped").exists()


def test_sdist_carries_the_models(project, tmp_path):
    with tarfile.open(_build("build_sdist", project, tmp_path)) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    assert {"setup.py", "MANIFEST.in"} <= names
    assert {f"models/{m}/model.safetensors" for m in SHIPPED} <= names
