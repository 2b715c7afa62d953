"""Run import-linter's contracts (pyproject.toml ``[tool.importlinter]``) over the installed layout.

The distribution maps top-level folders into the ``burstbus`` namespace (``store/`` is
``burstbus.store`` …, pyproject ``package-dir``), while import-linter (grimp) finds a package's
modules by walking its one directory. So this builds that directory as a tree of symlinks in a
temporary folder, as a wheel would lay it out, and runs ``lint-imports`` with it first on the
path. Exit status: lint-imports' own (1 on a broken contract, naming the import)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def mirror(into: Path) -> None:
    with open(ROOT / "pyproject.toml", "rb") as handle:
        package_dirs: dict[str, str] = tomllib.load(handle)["tool"]["setuptools"]["package-dir"]
    for package, folder in sorted(package_dirs.items(), key=lambda item: item[0].count(".")):
        target = into.joinpath(*package.split("."))
        if target.is_symlink() or target.exists():
            continue  # inside a folder already linked (burstbus.store.projections in store/)
        target.parent.mkdir(parents=True, exist_ok=True)
        if package == "burstbus":  # the root holds the others: link its entries one by one
            target.mkdir()
            for entry in (ROOT / folder).iterdir():
                if entry.name != "__pycache__":
                    (target / entry.name).symlink_to(entry)
        else:
            target.symlink_to(ROOT / folder)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="burstbus-imports-") as tmp:
        mirror(Path(tmp))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([tmp, os.environ.get("PYTHONPATH", "")])}
        beside = Path(sys.executable).with_name("lint-imports")  # this interpreter's, else the PATH's
        lint = str(beside) if beside.exists() else shutil.which("lint-imports") or "lint-imports"
        return subprocess.call([lint, str(ROOT / "pyproject.toml")], cwd=tmp, env=env)


if __name__ == "__main__":
    sys.exit(main())
