"""Build hook: a wheel carries the shipped models (all metadata is in pyproject.toml).

The models live in the repository's top-level ``models/`` folder, beside the package (the name
``seqattn/models/`` is taken by the model code). Building a wheel copies them into the package as
``seqattn/shipped/``, which ``seqattn.translate.models_dir()`` reads before ``models/``. An
editable install copies nothing and keeps reading ``models/`` in the checkout. The sdist carries
``models/`` (MANIFEST.in), so a wheel built from the sdist has the models too.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

MODELS = Path("models")            # relative to the project root, where setuptools runs
BUNDLED = Path("seqattn", "shipped")   # inside the wheel; models_dir() knows the name


def _model_files(root: Path) -> list[Path]:
    """Every file under ``root`` except hidden files and Python caches."""
    return sorted(p for p in root.rglob("*") if p.is_file()
                  and not any(part.startswith(".") or part == "__pycache__"
                              for part in p.relative_to(root).parts))


class BuildPyWithModels(build_py):
    """``build_py`` that also copies ``models/`` into ``build_lib/seqattn/shipped/``."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:   # pip install -e: the checkout's models/ is read in place
            return
        if not any(MODELS.glob("*/seqattn.json")):
            raise SystemExit(f"error: no shipped model in {MODELS.resolve()}/ (a wheel without "
                             "models cannot translate); build from a full checkout or the sdist")
        target = Path(self.build_lib) / BUNDLED
        shutil.rmtree(target, ignore_errors=True)   # no stale model from an earlier build
        for src in _model_files(MODELS):
            dest = target / src.relative_to(MODELS)
            self.mkpath(str(dest.parent))
            self.copy_file(str(src), str(dest))


setup(cmdclass={"build_py": BuildPyWithModels})
