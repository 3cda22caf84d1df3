"""The real-window tier: a real `blender` executable with a window (Debian 13's Blender 4.3 under
Xvfb), the built extension zip installed with `blender --command extension install-file` into a
throwaway HOME, driven as a user drives it (driver.py, scenarios.py).

Run it with `make test-window`: it runs these tests inside the cached Debian 13 root
(scripts/trixie_root.sh), which has blender, Xvfb, xdotool and ImageMagick. Screenshots, Blender's
logs and the measured figures are kept under out/test-artifacts/ (FATHOM_TEST_ARTIFACTS).
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
ARTIFACTS = Path(os.environ.get("FATHOM_TEST_ARTIFACTS", ROOT / "out" / "test-artifacts"))
SCREEN = (1600, 900)


def run(cmd, timeout=300, **kwargs):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kwargs)


def checked(cmd, **kwargs):
    result = run(cmd, **kwargs)
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, cmd))} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


@pytest.fixture(scope="session")
def blender_exe():
    """Debian's `blender` (and the X tools the driver uses), and the Python it embeds."""
    missing = [tool for tool in ("blender", "Xvfb", "xdotool", "import") if shutil.which(tool) is None]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not found: the real-window tests run inside the Debian 13 root; "
            "run them with `make test-window` (scripts/trixie_root.sh)."
        )
    code = "import sys, bpy; print('@@', bpy.app.version_string, '%d.%d' % sys.version_info[:2])"
    out = checked(["blender", "-b", "--factory-startup", "--python-expr", code]).stdout
    version, python = next(line.split()[1:] for line in out.splitlines() if line.startswith("@@ "))
    return {"path": shutil.which("blender"), "version": version, "python": python}


@pytest.fixture(scope="session")
def display():
    """A private X server (Xvfb) at the size the driver expects."""
    # /tmp is private to each run of the root, but X's abstract sockets are not: a display another
    # run holds makes Xvfb exit at once, so the next number is tried.
    for number in range(99, 200):
        if os.path.exists(f"/tmp/.X11-unix/X{number}"):
            continue
        server = subprocess.Popen(
            ["Xvfb", f":{number}", "-screen", "0", f"{SCREEN[0]}x{SCREEN[1]}x24", "-nolisten", "tcp"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while not os.path.exists(f"/tmp/.X11-unix/X{number}") and server.poll() is None:
            if time.monotonic() > deadline:
                pytest.fail(f"Xvfb :{number} did not start")
            time.sleep(0.1)
        if server.poll() is None:
            break
    else:
        pytest.fail("no free X display from :99 to :199")
    yield f":{number}"
    server.terminate()
    server.wait(10)


@pytest.fixture(scope="session")
def extension_zip(tmp_path_factory, blender_exe):
    """The extension built for linux-x64 with the wheels for the Python Debian's Blender embeds."""
    out = tmp_path_factory.mktemp("dist")
    py = blender_exe["python"]
    checked([sys.executable, ROOT / "scripts" / "fetch_wheels.py", "--platform", "linux-x64", "--python", py])
    checked(
        [
            sys.executable,
            ROOT / "scripts" / "build_extension.py",
            "--platform",
            "linux-x64",
            "--python",
            py,
            "--output-dir",
            out,
        ]
    )
    (zip_path,) = out.glob("fathom-*.zip")
    return zip_path


@pytest.fixture(scope="session")
def blender_home(tmp_path_factory, extension_zip, blender_exe):
    """A throwaway HOME whose Blender profile has the zip installed, the way a user's command line does."""
    home = tmp_path_factory.mktemp("home")
    cmd = ["blender", "-b", "--command", "extension", "install-file", "-r", "user_default", "-e", extension_zip]
    result = checked(cmd, env=blender_env(home))
    record("install", {"command": " ".join(map(str, cmd)), "exit": result.returncode, "stdout": result.stdout[-2000:]})
    return home


def blender_env(home, catalog=None, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BLENDER_USER_", "XDG_CONFIG", "FATHOM_CATALOG"))}
    env["HOME"] = str(home)
    if catalog is not None:
        env["FATHOM_CATALOG"] = str(catalog)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def record(name, value):
    """Keep a figure or a transcript with the artifacts (out/test-artifacts/NAME.json) and print it."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"{name}.json").write_text(json.dumps(value, indent=1))
    print(f"{name}: {json.dumps(value)[:2000]}")


@pytest.fixture(scope="session")
def catalogs(tmp_path_factory, standin_model):
    """FATHOM_CATALOG files pointing da2-small at the full-size stand-in or at the tests' tiny model."""
    folder = tmp_path_factory.mktemp("catalogs")
    tiny = os.environ.get("FATHOM_TINY_MODEL")
    if not tiny or not Path(tiny).is_file():
        pytest.fail("FATHOM_TINY_MODEL must name the tests' tiny model (make test-window builds it with .venv)")
    paths = {}
    for name, model in (("standin", standin_model), ("tiny", tiny)):
        paths[name] = folder / f"{name}.json"
        paths[name].write_text(json.dumps({"models": {"da2-small": {"path": str(model)}}}))
    return paths


@pytest.fixture
def scene_blend(tmp_path, blender_exe):
    """A fresh copy of the test scene, built by this Blender: sample scene, camera, packed "Photo"."""
    path = tmp_path / "shot.blend"
    checked(["blender", "-b", "--factory-startup", "--python", HERE / "make_scene.py", "--", path])
    return path


@pytest.fixture
def window(display, blender_home, request):
    """window(scenario, blend, catalog=None, **args) -> the scenario's results: Blender opens ``blend``
    in a window on the private X server and runs ``scenario`` (scenarios.py). Screenshots and the
    log go to out/test-artifacts/<test name>/."""

    def open_window(scenario, blend, catalog=None, timeout=400, **args):
        artifacts = ARTIFACTS / request.node.name.replace("/", "_")
        shutil.rmtree(artifacts, ignore_errors=True)
        artifacts.mkdir(parents=True)
        out = artifacts / "results.json"
        cmd = [
            "blender",
            blend,
            "--window-geometry",
            "0",
            "0",
            *map(str, SCREEN),
            "--python",
            HERE / "run_scenario.py",
            "--",
            scenario,
        ]
        env = blender_env(
            blender_home,
            catalog,
            DISPLAY=display,
            FATHOM_DRIVER_OUT=out,
            FATHOM_DRIVER_ARTIFACTS=artifacts,
            FATHOM_SCENARIO_ARGS=json.dumps(args),
        )
        result = run(cmd, timeout=timeout, env=env, cwd=blend.parent)
        (artifacts / "blender.log").write_text(
            f"$ {' '.join(map(str, cmd))}\nexit {result.returncode}\n{result.stdout}\n--- stderr ---\n{result.stderr}"
        )
        if not out.is_file():
            pytest.fail(
                f"Blender ended ({result.returncode}) without results:\n{result.stdout[-3000:]}\n"
                f"{result.stderr[-3000:]}"
            )
        got = json.loads(out.read_text())
        if got["error"]:
            pytest.fail(f"scenario {scenario} failed:\n{got['error']}\n(log: {artifacts / 'blender.log'})")
        return got

    return open_window
