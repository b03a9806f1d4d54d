"""A normal, non-editable ``pip install`` ships the twistd plugins.

The plugin files must land in ``site-packages/twisted/plugins`` as plain
modules (that folder has no ``__init__.py``), or ``twistd mqttauth`` does not
exist after installation.  The test copies the working tree, installs the
copy into a new virtual environment that reuses this interpreter's packages
(``--no-deps``), and runs twistd from there.  The build itself needs
setuptools and wheel from the package index, as any ``pip install .`` does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.support.process import REPOSITORY

pytestmark = pytest.mark.e2e

PLUGIN_FILES = ("mqttauth_plugin.py", "mqttauth_builtin.py", "mqttauth_jwt.py")
_SKIP = shutil.ignore_patterns(
    ".git",
    "node_modules",
    "__pycache__",
    "build",
    "*.egg-info",
    ".tox",
    "dropin.cache",
    ".pytest_cache",
    ".hypothesis",
    ".mypy_cache",
    ".ruff_cache",
    "data",
    "bench",
)


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("packaging")
    source = folder / "source"
    shutil.copytree(REPOSITORY, source, ignore=_SKIP)
    environment = folder / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", str(environment)],
        check=True,
        timeout=120,
    )
    result = subprocess.run(
        [
            str(environment / "bin" / "pip"),
            "install",
            "--quiet",
            "--no-deps",
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=clean_environment(),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return environment


def clean_environment() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}


def site_packages(environment: Path) -> Path:
    relative = Path(sysconfig.get_path("purelib")).relative_to(sys.prefix)
    return environment / relative


def test_plugin_files_installed(venv: Path) -> None:
    plugins = site_packages(venv) / "twisted" / "plugins"
    for name in PLUGIN_FILES:
        assert (plugins / name).is_file(), name


def test_no_init_in_plugin_folder(venv: Path) -> None:
    assert not (site_packages(venv) / "twisted" / "plugins" / "__init__.py").exists()


def test_package_imported_from_venv(venv: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import mqttauth.service.tap as t; print(t.__file__)",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean_environment(),
        timeout=120,
    )
    assert result.stdout.strip().startswith(str(site_packages(venv)))


def test_twistd_mqttauth_help(venv: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            # Twisted comes from the base interpreter, so the venv has no
            # twistd script of its own.
            "from twisted.scripts.twistd import run; run()",
            "mqttauth",
            "--help",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean_environment(),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "--authenticator=" in result.stdout
