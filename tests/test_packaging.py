"""A plain, non-editable install carries the Lua scripts inside the package."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from redis_store.scripts import SCRIPT_NAMES

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        check=True,
    )
    (built,) = out.glob("redis_store-*.whl")
    return built


def test_wheel_contains_every_script(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for script in (*SCRIPT_NAMES, "lib"):
        assert f"redis_store/lua/{script}.lua" in names


def test_wheel_ships_its_type_information(wheel):
    assert "redis_store/py.typed" in zipfile.ZipFile(wheel).namelist()


def test_the_store_does_not_import_the_operator_tools():
    code = "import sys, redis_store; print(sorted(m for m in ('redis_store.doctor', 'redis_store.cli') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_installed_package_loads_its_scripts_in_a_fresh_venv(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True)
    # Dependencies (redis, msgspec) come from this environment's site-packages
    # via PYTHONPATH, which does not process .pth files, so an editable
    # checkout of redis_store is not visible: the venv's copy must be used.
    deps = sysconfig.get_paths()["purelib"]
    check = (
        "import redis_store, redis_store.scripts as s, hashlib;"
        "assert '/venv/' in redis_store.__file__, redis_store.__file__;"
        "print(redis_store.__file__);"
        "print(sorted(s.sha1(n) for n in s.SCRIPT_NAMES))"
    )
    result = subprocess.run(
        [python, "-c", check], cwd=tmp_path, env={**os.environ, "PYTHONPATH": deps},
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    from redis_store import scripts

    assert str(sorted(scripts.sha1(n) for n in SCRIPT_NAMES)) in result.stdout
