"""`make demo`: Fathom's main job end to end on a fresh machine.

1. Makes sure the depth model is there: downloads Depth Anything V2 Small with a progress bar,
   or, where there is no network, says so in one line and how to point Fathom at a local file
   (and, in this repository's sandbox, uses the random-weight stand-in from ../shared/models).
2. Renders the sample scene with Cycles in real Blender (the bpy module).
3. Estimates its depth and writes the depth files and previews into out/.
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine import encode  # noqa: E402
from engine.catalog import CATALOG_ENV, get_model  # noqa: E402
from engine.depth import estimate  # noqa: E402
from engine.errors import FathomError  # noqa: E402
from engine.imageio import read_image  # noqa: E402
from engine.settings import DepthSettings  # noqa: E402
from engine.store import ModelStore  # noqa: E402

OUT = ROOT / "out"
BLENDER_PY = ROOT / ".venv-blender" / "bin" / "python"
STANDIN = ROOT.parent / "shared" / "models" / "depth-anything-v2-small-standin.onnx"
MODEL = "da2-small"


class ProgressBar:
    def __init__(self, label):
        self.label, self.last = label, 0.0

    def __call__(self, done, total):
        now = time.monotonic()
        if total and (now - self.last > 0.2 or done >= total):
            self.last = now
            filled = int(30 * done / total)
            print(f"\r{self.label} [{'#' * filled}{'.' * (30 - filled)}] {100 * done / total:5.1f} %",
                  end="", flush=True)
            if done >= total:
                print()


def ensure_model():
    """The model file to use, downloading it when possible."""
    store = ModelStore()
    info = get_model(MODEL)
    try:
        return store.resolve(MODEL), False
    except FathomError:
        pass
    try:
        return store.download(MODEL, progress=ProgressBar(f"Downloading {info.name}"), timeout=15), False
    except FathomError as exc:
        reason = str(exc).split(". ")[0]
        print(f"\nCannot download {info.name} ({reason}); to use a model file you have, run: "
              f"FATHOM_CATALOG=models.json make demo, with models.json = "
              f'{{"models": {{"{MODEL}": {{"path": "/path/to/model.onnx"}}}}}}')
    if not STANDIN.is_file():
        sys.exit(2)
    # The sandbox's stand-in, named through the ordinary catalogue override.
    override = OUT / "standin-catalog.json"
    override.write_text(json.dumps({"models": {MODEL: {"path": str(STANDIN)}}}))
    os.environ[CATALOG_ENV] = str(override)
    print(f"Using the stand-in {STANDIN.name}: same size and speed as the real model, random weights, "
          "so the depth is NOT meaningful.")
    return ModelStore().resolve(MODEL), True


def main():
    OUT.mkdir(exist_ok=True)
    model_path, standin = ensure_model()

    print("Rendering the sample scene with Cycles ...")
    render = OUT / "render.png"
    subprocess.run([str(BLENDER_PY), str(ROOT / "scripts" / "sample_scene.py"), str(render),
                    "--blend", str(OUT / "scene.blend")], check=True, stdout=subprocess.DEVNULL)

    picture = read_image(render)
    settings = DepthSettings()
    result = estimate(picture, settings, model_path,
                      progress=lambda f, msg: print(f"\rEstimating depth: {msg:<24} {100 * f:5.1f} %", end=""))
    print()
    meta = {"model": settings.model, "standin": standin, "resolution": settings.resolution,
            "normalization": settings.normalization, "source": render.name}
    written = []
    for fmt, name in (("exr32", "depth.exr"), ("exr16", "depth_half.exr"), ("png16", "depth_16bit.png"),
                      ("png8", "depth_8bit.png")):
        written.append(encode.write_depth(OUT / name, result.depth, fmt, overwrite=True, metadata=meta))
    for name, pixels in (("depth_preview.png", encode.colorize(result.depth)),
                         ("side_by_side.png", encode.side_by_side(picture.rgb, result.depth))):
        written.append(encode.write_file(OUT / name, encode.encode_png(pixels), overwrite=True))
    t = result.timings
    print(f"Depth {result.depth.shape[1]}x{result.depth.shape[0]} in {t['total']:.2f} s "
          f"(network {t['inference']:.2f} s at {result.network_size[1]}x{result.network_size[0]}).")
    for path in [render, OUT / "scene.blend", *written]:
        print(f"  {path.relative_to(ROOT)}")


if __name__ == "__main__":
    try:
        main()
    except FathomError as exc:
        sys.exit(f"Fathom: {exc}")
