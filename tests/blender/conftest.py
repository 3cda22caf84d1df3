"""Blender tests: the built extension zip, installed into a throwaway profile of real Blender (bpy).

This process never imports bpy: bpy reads HOME (the user profile) once, when it is imported, and
one Blender keeps its state for the whole process. Each scenario runs in a fresh Python process
with HOME pointing at the throwaway profile (scripts/blender_cli.py does the same for the CLI).

The interpreter running these tests (.venv-blender) has bpy but neither onnxruntime nor Pillow,
so whatever the extension imports can only come from the wheels inside its zip.
"""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEV_PYTHON = ROOT / ".venv" / "bin" / "python"  # has onnx, to build the tiny model
PLATFORM, PYTHON = "linux-x64", f"{sys.version_info[0]}.{sys.version_info[1]}"
MODULE = "bl_ext.user_default.fathom"
RESULT_MARK = "@@FATHOM-RESULT@@"

# Runs first in every scenario: Blender with the throwaway profile and the extension enabled.
_PRELUDE = f"""
import json, os, sys
import bpy, addon_utils
sys.path.insert(0, {str(ROOT / "scripts")!r})
from blender_cli import load_profile
load_profile()  # the bpy module starts without the profile's add-ons (4.2: enables Fathom only)
def emit(value):
    print({RESULT_MARK!r} + json.dumps(value), flush=True)
"""


def _run(cmd, **kwargs):
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="session", autouse=True)
def no_onnxruntime_or_pillow_here():
    for name in ("onnxruntime", "PIL"):
        if importlib.util.find_spec(name) is not None:
            pytest.fail(
                f"{name} is installed in {sys.prefix}: the Blender tests must run where only the "
                "extension's zip can provide it (.venv-blender, make venvs)."
            )


@pytest.fixture(scope="session")
def extension_zip(tmp_path_factory):
    """The extension built for this platform and Python, wheels fetched from PyPI by pinned version."""
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, ROOT / "scripts" / "fetch_wheels.py", "--platform", PLATFORM, "--python", PYTHON])
    _run(
        [
            sys.executable,
            ROOT / "scripts" / "build_extension.py",
            "--platform",
            PLATFORM,
            "--python",
            PYTHON,
            "--output-dir",
            out,
        ]
    )
    (zip_path,) = out.glob("fathom-*.zip")
    return zip_path


@pytest.fixture(scope="session")
def blender_home(tmp_path_factory, extension_zip):
    """A throwaway home whose Blender profile has the extension installed and enabled."""
    home = tmp_path_factory.mktemp("home")
    _run(
        [sys.executable, ROOT / "scripts" / "blender_cli.py", "--home", home, "--install", extension_zip],
        env=_env(home),
    )
    return home


@pytest.fixture(scope="session")
def tiny_model_file(tmp_path_factory):
    """The tests' tiny DA-V2-contract model, built with .venv's onnx (this venv has none), or the one
    FATHOM_TINY_MODEL names (built beforehand, where .venv cannot run: in the Debian 13 root)."""
    if os.environ.get("FATHOM_TINY_MODEL"):
        return Path(os.environ["FATHOM_TINY_MODEL"])
    path = tmp_path_factory.mktemp("models") / "tiny.onnx"
    code = "import sys; from tests.tiny_model import build_tiny_model; build_tiny_model(sys.argv[1])"
    _run([DEV_PYTHON, "-c", code, path], cwd=ROOT)
    return path


@pytest.fixture(scope="session")
def oracle_model_file(tmp_path_factory):
    """An oracle network (tests/tiny_model.py): its output is 3.7 x the picture's red channel (the true inverse
    depth there) + 0.6 + 0.004 x noise from the green channel, built with .venv's onnx."""
    path = tmp_path_factory.mktemp("models") / "oracle.onnx"
    code = (
        "import sys; from tests.tiny_model import build_oracle_model; build_oracle_model(sys.argv[1], 3.7, 0.6, 0.004)"
    )
    _run([DEV_PYTHON, "-c", code, path], cwd=ROOT)
    return path


def _env(home, catalog=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BLENDER_USER_", "XDG_CONFIG"))}
    env["HOME"] = str(home)
    env.pop("FATHOM_CATALOG", None)
    if catalog is not None:
        env["FATHOM_CATALOG"] = str(catalog)
    return env


@pytest.fixture
def catalog_for(tmp_path):
    """Writes a FATHOM_CATALOG override pointing model ids at local files; returns its path."""

    def make(**models):
        path = tmp_path / "catalog.json"
        path.write_text(json.dumps({"models": {k.replace("_", "-"): {"path": str(v)} for k, v in models.items()}}))
        return path

    return make


@pytest.fixture
def blender(blender_home, tmp_path):
    """run(*code, catalog=None) -> what the code emit()ted: the code parts (each dedented) run in a fresh
    Blender process with the extension enabled; ``emit(value)`` sends a JSON value back; ``tmp`` is
    this test's folder."""

    def run(*code, catalog=None, expect_ok=True):
        script = tmp_path / "scenario.py"
        body = "\n".join(textwrap.dedent(part) for part in code)
        script.write_text(_PRELUDE + f"tmp = {str(tmp_path)!r}\n" + body)
        result = subprocess.run(
            [sys.executable, str(script)],
            capture_output=True,
            text=True,
            env=_env(blender_home, catalog),
            cwd=tmp_path,
            timeout=300,
        )
        if expect_ok and result.returncode != 0:
            pytest.fail(f"Blender scenario failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        values = [
            json.loads(line[len(RESULT_MARK) :]) for line in result.stdout.splitlines() if line.startswith(RESULT_MARK)
        ]
        return values[-1] if values else None

    return run


@pytest.fixture
def fathom_cli(blender_home, tmp_path):
    """cli(*args, blend=None, catalog=None) -> CompletedProcess of scripts/blender_cli.py."""

    def cli(*args, blend=None, catalog=None):
        cmd = [sys.executable, str(ROOT / "scripts" / "blender_cli.py")]
        if blend:
            cmd += ["--blend", str(blend)]
        return subprocess.run(
            [*cmd, "--", *map(str, args)],
            capture_output=True,
            text=True,
            env=_env(blender_home, catalog),
            cwd=tmp_path,
            timeout=300,
        )

    return cli
