"""`make demo`: Fathom's main job end to end, in real Blender, on a fresh machine.

1. The depth model: downloads Depth Anything V2 Small with a progress bar, or, where there is
   no network, says so in one line and how to point Fathom at a local file (in this
   repository's sandbox it then uses the random-weight stand-in from ../shared/models).
2. Builds the extension zip for this machine (wheels fetched by pinned version) and installs it
   into a throwaway Blender profile (build/demo-home), as a user would install it.
3. Builds the sample scene and saves it as out/scene.blend.
4. In Blender, through the extension's command line: renders the scene, generates its depth,
   loads it as a Non-Color image in a compositor Image node; takes the render's exact depth (Scene Z)
   too, fits the network's map to it (metric depth), builds the displacement (the render as its
   picture, every point at its real distance) and depth of field (focused on the centre, in scene
   units) setups on the exact depth, and saves the .blend.
5. Writes previews next to it: the render and its depth side by side, the displaced plane from the
   scene's camera and from one moved sideways (displacement_original.png, displacement_moved.png:
   the 2.5D effect) and the depth of field result (dof.png).
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine import encode  # noqa: E402
from engine.catalog import CATALOG_ENV, get_model  # noqa: E402
from engine.errors import FathomError  # noqa: E402
from engine.imageio import read_image  # noqa: E402
from engine.store import ModelStore  # noqa: E402

OUT = ROOT / "out"
HOME = ROOT / "build" / "demo-home"
BLENDER_PY = ROOT / ".venv-blender" / "bin" / "python"
STANDIN = ROOT.parent / "shared" / "models" / "depth-anything-v2-small-standin.onnx"
MODEL = "da2-small"
PY_VERSION = f"{sys.version_info[0]}.{sys.version_info[1]}"


class ProgressBar:
    def __init__(self, label):
        self.label, self.last = label, 0.0

    def __call__(self, done, total):
        now = time.monotonic()
        if total and (now - self.last > 0.2 or done >= total):
            self.last = now
            filled = int(30 * done / total)
            print(
                f"\r{self.label} [{'#' * filled}{'.' * (30 - filled)}] {100 * done / total:5.1f} %", end="", flush=True
            )
            if done >= total:
                print()


def ensure_model():
    """Make the model available to Blender through a catalogue override; True for the stand-in."""
    info = get_model(MODEL)
    store = ModelStore()
    standin = False
    try:
        path = store.resolve(MODEL)
    except FathomError:
        try:
            path = store.download(MODEL, progress=ProgressBar(f"Downloading {info.name}"), timeout=15)
        except FathomError as exc:
            reason = str(exc).split(". ")[0]
            print(
                f"\nCannot download {info.name} ({reason}); to use a model file you have, run: "
                f"FATHOM_CATALOG=models.json make demo, with models.json = "
                f'{{"models": {{"{MODEL}": {{"path": "/path/to/model.onnx"}}}}}}'
            )
            if not STANDIN.is_file():
                sys.exit(2)
            path, standin = STANDIN, True
            print(
                f"Using the stand-in {STANDIN.name}: same size and speed as the real model, random weights, "
                "so the depth is NOT meaningful."
            )
    if os.environ.get(CATALOG_ENV) and not standin:
        return False  # the user's own catalogue already names the file
    override = OUT / "models.json"
    override.write_text(json.dumps({"models": {MODEL: {"path": str(path)}}}))
    os.environ[CATALOG_ENV] = str(override)
    return standin


def run(step, cmd, capture=False):
    print(f"== {step}")
    result = subprocess.run([str(c) for c in cmd], cwd=ROOT, text=True, stdout=subprocess.PIPE if capture else None)
    if result.returncode != 0:
        sys.exit(f"demo: {step} failed (exit code {result.returncode}).")
    return result.stdout or ""


def fathom(*args, blend):
    """Fathom's CLI inside Blender: what `blender -b BLEND -c fathom ARGS` does in a Blender install."""
    return [BLENDER_PY, ROOT / "scripts" / "blender_cli.py", "--home", HOME, "--blend", blend, "--", *args]


DEMO_FILES = ("scene.blend", "scene.blend1", "render.png", "depth_preview.png", "side_by_side.png", "models.json")


def clear_previous_run():
    """A rerun replaces the demo's own files in out/ (other things there, test artifacts, stay)."""
    old = [OUT / name for name in DEMO_FILES if (OUT / name).exists()]
    if not old and not (OUT / "generated").is_dir():
        return
    print("== out/ holds an earlier demo run: replacing its files (scene.blend, render.png, generated/, previews)")
    for path in old:
        path.unlink()
    shutil.rmtree(OUT / "generated", ignore_errors=True)


def main():
    OUT.mkdir(exist_ok=True)
    clear_previous_run()
    standin = ensure_model()
    dist = ROOT / "build" / "demo-dist"
    run(
        "Fetching wheels",
        [BLENDER_PY, ROOT / "scripts" / "fetch_wheels.py", "--platform", "linux-x64", "--python", PY_VERSION],
    )
    for old in dist.glob("fathom-*.zip"):
        old.unlink()
    run(
        "Building the extension",
        [
            BLENDER_PY,
            ROOT / "scripts" / "build_extension.py",
            "--platform",
            "linux-x64",
            "--python",
            PY_VERSION,
            "--output-dir",
            dist,
        ],
    )
    (zip_path,) = dist.glob("fathom-*.zip")
    run(
        "Installing it into a throwaway Blender profile",
        [BLENDER_PY, ROOT / "scripts" / "blender_cli.py", "--home", HOME, "--install", zip_path],
    )

    blend, render = OUT / "scene.blend", OUT / "render.png"
    for old in (blend, render):
        old.unlink(missing_ok=True)
    run("Building the sample scene", [BLENDER_PY, ROOT / "scripts" / "sample_scene.py", render, "--blend", blend])
    out = run(
        "Generating depth from the render (Cycles) and loading it into the compositor",
        fathom("generate", "--source", "render", "--save", blend=blend),
        capture=True,
    )
    depth_file = Path(out.strip().splitlines()[-1])
    print(f"   {depth_file}")
    out = run(
        "The render's exact depth (Scene Z), in scene units",
        fathom("generate", "--source", "render", "--backend", "scene-z", "--save", blend=blend),
        capture=True,
    )
    scene_z_file = Path(out.strip().splitlines()[-1])
    print(f"   {scene_z_file}")
    print("== Metric depth: the network's map fitted to the Scene Z")
    fit = subprocess.run(
        [str(c) for c in fathom("setup", "metric", "--depth", depth_file.name, "--save", blend=blend)],
        cwd=ROOT,
        text=True,
        capture_output=True,
    )
    if fit.returncode != 0 and not standin:
        sys.exit(f"demo: metric depth failed: {fit.stderr.strip()}")
    said = (fit.stdout if fit.returncode == 0 else fit.stderr).strip().splitlines()
    print(f"   {said[-1] if said else ''}" + ("  (the stand-in's depth is random)" if standin else ""))
    # On the exact depth: every point at its real distance, the render as the picture; depth of field focused
    # on the near sphere, wide open so the blur shows on this small scene.
    for setup, options in (("displacement", ()), ("dof", ("--f-stop", "0.5", "--focus-at", "0.33", "0.3"))):
        out = run(
            f"Setting up {setup}",
            fathom("setup", setup, "--depth", scene_z_file.name, *options, "--save", blend=blend),
            capture=True,
        )
        print(f"   {out.strip().splitlines()[-1]}")
    run(
        "Rendering previews of the setups",
        [BLENDER_PY, ROOT / "scripts" / "demo_previews.py", "--home", HOME, "--blend", blend, "--out", OUT],
    )

    depth = encode.read_depth(depth_file)
    picture = read_image(render)
    for name, pixels in (
        ("depth_preview.png", encode.colorize(depth)),
        ("side_by_side.png", encode.side_by_side(picture.rgb, depth)),
    ):
        encode.write_file(OUT / name, encode.encode_png(pixels), overwrite=True)
    print("== Written:")
    for path in (
        blend,
        render,
        depth_file,
        scene_z_file,
        OUT / "depth_preview.png",
        OUT / "side_by_side.png",
        OUT / "displacement_moved.png",
        OUT / "displacement_original.png",
        OUT / "dof.png",
    ):
        print(f"   {path.relative_to(ROOT)}")
    if standin:
        print("   (made with the stand-in model: the depth is not meaningful)")
    print(
        f"The extension zip: {zip_path.relative_to(ROOT)}; the Blender profile it is installed in: "
        f"{HOME.relative_to(ROOT)} (README: Using the demo's build afterwards)."
    )


if __name__ == "__main__":
    try:
        main()
    except FathomError as exc:
        sys.exit(f"Fathom: {exc}")
