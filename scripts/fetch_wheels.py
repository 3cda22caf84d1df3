"""Download the third-party wheels the extension bundles into wheels/ (never committed).

    python scripts/fetch_wheels.py --all                          every platform and Python, then
                                                                  rewrite the manifest's wheels list
    python scripts/fetch_wheels.py --platform linux-x64 --python 3.11   just what one test needs

The pins below are the one place the bundled versions are named: `--all` writes the
``wheels = [...]`` block of blender_manifest.toml from the files it downloaded, and
``check_manifest`` (run by the Blender tests) fails when the manifest and the pins disagree.

What is bundled, and why only that:
- onnxruntime (Linux, macOS: the CPU build, with CoreML on macOS) or onnxruntime-directml
  (Windows: DirectML runs on any DirectX 12 GPU, and the CPU in the same wheel): declares
  coloredlogs, flatbuffers, numpy, packaging, protobuf and sympy as
  requirements, but creating and running an ``InferenceSession`` imports none of them
  (checked with ``python -X importtime`` and ``sys.modules`` after ``InferenceSession(...).run``):
  they serve ORT's quantisation and transformer-optimiser tools (sympy, protobuf, flatbuffers,
  packaging) and its optional console logging (coloredlogs). Bundling them would add ~10 MB
  (sympy alone is 6 MB) for code the extension never runs.
- numpy and requests: Blender ships them; a second copy would shadow Blender's.
- Pillow: reads the image files the user picks (engine/imageio.py).
- onnx, with what it imports (protobuf, ml_dtypes, typing_extensions): edits the model graph once
  per model file (engine/graph_rewrite.py: mask guards out, attention and GELU fused, int8 weights
  for the fast qualities), which makes inference 1.3-1.6x faster on the CPU. onnxruntime alone
  can save its own optimised graph but not remove the exporter's mask guards nor fuse this
  attention; its Python optimiser and quantiser need onnx too, and sympy on top (6 MB) for what
  graph_rewrite.py does in a few lines. About 14 MB of wheels per Python and platform (onnx 8.9,
  ml_dtypes 5.0, protobuf 0.3, typing_extensions 0.05), against 17 MB for onnxruntime itself.

Wheels come from PyPI through pip's own client, by pinned version, binary only. pip's cache makes
re-runs cheap.
"""

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WHEELS = ROOT / "wheels"
MANIFEST = ROOT / "blender_manifest.toml"

PINS = {
    "onnxruntime": "1.23.2",
    "pillow": "12.0.0",
    "onnx": "1.23.2",
    "protobuf": "7.36.2",
    "ml-dtypes": "0.5.4",
    "typing-extensions": "4.16.0",
}
# Where a platform gets another build of a pinned package: dist -> (replacement, version).
# onnxruntime-directml has no 1.23.2; 1.23.0 is the nearest release.
PLATFORM_PINS = {"windows-x64": {"onnxruntime": ("onnxruntime-directml", "1.23.0")}}


def pins(platform: str) -> dict:
    """dist -> version bundled for one Blender platform."""
    chosen = dict(PINS)
    for dist, (replacement, version) in PLATFORM_PINS.get(platform, {}).items():
        del chosen[dist]
        chosen[replacement] = version
    return chosen


def all_pins() -> set:
    return {(d, v) for platform in PLATFORMS for d, v in pins(platform).items()}


# Blender's platform names -> what pip should accept. Blender 4.2+ needs glibc 2.28 on Linux;
# onnxruntime 1.23 publishes macOS wheels for macOS 13 and later only.
PLATFORMS = {
    "linux-x64": ["manylinux_2_28_x86_64", "manylinux2014_x86_64"],  # 2014 (glibc 2.17): protobuf's binary wheel
    "windows-x64": ["win_amd64"],
    "macos-arm64": ["macosx_13_0_arm64"],
    "macos-x64": ["macosx_13_0_x86_64"],
}
# Blender 4.2 to 5.0 embed Python 3.11, Blender 5.1 and later 3.13.
PYTHONS = ("3.11", "3.13")

_WHEEL = re.compile(
    r"^(?P<dist>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-(?P<py>[^-]+)-(?P<abi>[^-]+)-(?P<plat>[^-]+)\.whl$"
)


def parse_wheel(name: str) -> dict:
    """dist (normalised), version, python ('3.11') and Blender platforms of a wheel file name."""
    m = _WHEEL.match(name)
    if not m:
        raise ValueError(f"{name} is not a wheel file name")
    py = m["py"]
    python = f"{py[2]}.{py[3:]}" if py.startswith("cp3") else py
    platforms = set()
    for tag in m["plat"].split("."):
        if tag.startswith(("manylinux", "musllinux")) and tag.endswith("x86_64"):
            platforms.add("linux-x64")
        elif tag == "win_amd64":
            platforms.add("windows-x64")
        elif tag.startswith("macosx_") and tag.endswith(("arm64", "universal2")):
            platforms.add("macos-arm64")
        elif tag == "any":
            platforms.update(PLATFORMS)
        if tag.startswith("macosx_") and tag.endswith(("x86_64", "universal2")):
            platforms.add("macos-x64")
    return {
        "dist": m["dist"].lower().replace("_", "-"),
        "version": m["version"],
        "python": python,
        "abi": m["abi"],
        "platforms": platforms,
    }


def fits(wheel: dict, platform: str, python: str) -> bool:
    """Whether a parsed wheel installs on a Blender platform and Python ('3.11')."""
    if platform not in wheel["platforms"]:
        return False
    if wheel["python"] == python or wheel["python"] in ("py3", "py2.py3"):
        return True
    as_tuple = lambda v: tuple(int(x) for x in v.split("."))  # noqa: E731
    return wheel["abi"] == "abi3" and wheel["python"][0].isdigit() and as_tuple(wheel["python"]) <= as_tuple(python)


def fetch(platform: str, python: str, dest: Path = WHEELS, pip=(sys.executable, "-m", "pip")) -> list:
    """Download the pinned wheels for one Blender platform and Python into ``dest``; their names."""
    with tempfile.TemporaryDirectory(prefix="fathom-wheels-") as tmp:
        cmd = [
            *pip,
            "download",
            "--disable-pip-version-check",
            "-q",
            "--only-binary=:all:",
            "--no-deps",
            "--implementation",
            "cp",
            "--python-version",
            python,
            "--dest",
            tmp,
        ]
        for tag in PLATFORMS[platform]:
            cmd += ["--platform", tag]
        cmd += [f"{dist}=={version}" for dist, version in pins(platform).items()]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            sys.exit(
                f"pip could not download the wheels for {platform} / Python {python}:\n{result.stderr.strip()}\n"
                "Check the network access to PyPI, or the pins in scripts/fetch_wheels.py."
            )
        names = sorted(p.name for p in Path(tmp).glob("*.whl"))
        dest.mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.move(str(Path(tmp) / name), str(dest / name))  # replaces an identical earlier copy
    _check_set(names, [(platform, python)])
    return names


def _check_set(names, combos):
    """Exactly one wheel per pin and (platform, python); raises ValueError otherwise."""
    problems = []
    for platform, python in combos:
        for dist, version in pins(platform).items():
            found = [
                n
                for n in set(names)
                if (w := parse_wheel(n))["dist"] == dist and w["version"] == version and fits(w, platform, python)
            ]
            if len(found) != 1:
                problems.append(f"{dist}=={version} for {platform} / Python {python}: {found or 'none'}")
        for n in set(names):  # e.g. the CPU onnxruntime in a Windows zip next to the DirectML one
            w = parse_wheel(n)
            if fits(w, platform, python) and pins(platform).get(w["dist"]) not in (None, w["version"]):
                problems.append(f"{n} would be installed on {platform} / Python {python} against its pin")
            elif (
                fits(w, platform, python)
                and w["dist"] not in pins(platform)
                and (w["dist"], w["version"]) in all_pins()
            ):
                problems.append(f"{n} is not meant for {platform}")
    pinned = all_pins()
    for n in names:
        w = parse_wheel(n)
        if (w["dist"], w["version"]) not in pinned:
            problems.append(f"{n} is not pinned in scripts/fetch_wheels.py")
    if problems:
        raise ValueError("Wheels do not match the pins: " + "; ".join(problems))


def manifest_wheels(text: str) -> list:
    """The wheel file names listed in the manifest's ``wheels = [...]`` block."""
    block = re.search(r"^wheels = \[(.*?)^\]", text, re.S | re.M)
    if not block:
        raise ValueError("blender_manifest.toml has no 'wheels = [' block at the start of a line")
    return [Path(p).name for p in re.findall(r'"\./wheels/([^"]+)"', block[1])]


def check_manifest(manifest: Path = MANIFEST):
    """Raise ValueError unless the manifest lists exactly one wheel per pin, platform and Python."""
    text = manifest.read_text(encoding="utf-8")
    _check_set(manifest_wheels(text), [(p, py) for p in PLATFORMS for py in PYTHONS])
    declared = re.search(r"^platforms = \[(.*?)\]", text, re.M | re.S)
    if not declared or set(re.findall(r'"([^"]+)"', declared[1])) != set(PLATFORMS):
        raise ValueError(f"The manifest's platforms must be {sorted(PLATFORMS)}")


def write_manifest(names, manifest: Path = MANIFEST):
    """Replace the manifest's wheels block with ``names`` (sorted), keeping everything else."""
    text = manifest.read_text(encoding="utf-8")
    body = "".join(f'  "./wheels/{n}",\n' for n in sorted(names))
    new, count = re.subn(r"^wheels = \[.*?^\]", lambda _: f"wheels = [\n{body}]", text, count=1, flags=re.S | re.M)
    if count != 1:
        raise ValueError("blender_manifest.toml has no 'wheels = [' block at the start of a line")
    if new != text:
        manifest.write_text(new, encoding="utf-8")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--all", action="store_true", help="every platform and Python; rewrites the manifest's wheels")
    ap.add_argument("--platform", choices=sorted(PLATFORMS), action="append", help="a Blender platform (repeatable)")
    ap.add_argument("--python", choices=PYTHONS, action="append", help="a Python version (repeatable)")
    ap.add_argument("--dest", type=Path, default=WHEELS, help="folder for the wheels (default: wheels/)")
    args = ap.parse_args(argv)
    if not args.all and not args.platform:
        ap.error("name --platform (and --python), or --all")
    platforms = list(PLATFORMS) if args.all else args.platform
    pythons = list(PYTHONS) if args.all or not args.python else args.python
    names = []
    for platform in platforms:
        for python in pythons:
            got = fetch(platform, python, args.dest)
            print(f"{platform} / Python {python}: {', '.join(got)}")
            names += got
    if args.all:
        wanted = set(names)
        for stale in args.dest.glob("*.whl"):  # older pins would otherwise end up in a zip
            if stale.name not in wanted:
                stale.unlink()
        if args.dest.resolve() == WHEELS.resolve():
            write_manifest(set(names))
            check_manifest()
            print(f"{MANIFEST.name}: wheels list matches the {len(wanted)} downloaded wheels")


if __name__ == "__main__":
    main()
