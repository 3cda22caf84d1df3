"""`blender -b shot.blend -c fathom ...`: Fathom from the command line, with exit codes.

    fathom generate --source image NAME | file PATH | render | compositor
                    [--backend local|scene-z] [--output PATH] [--save] [settings]

Exit codes: 0 done, 1 failed (see stderr), 2 bad command line, 3 unusable source (missing or
corrupt image, no camera, nothing to composite), 4 model missing or unknown, 5 nowhere to write
(unsaved .blend, existing file).
"""
import argparse
import sys

import bpy

from ..engine.errors import FathomError, ImageError, ModelError
from ..engine.settings import MAX_RESOLUTION, MIN_RESOLUTION, NORMALIZATIONS, OUTPUT_FORMATS
from . import pipeline, results
from .render_capture import RenderCaptureError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SOURCE, EXIT_MODEL, EXIT_OUTPUT = 0, 1, 2, 3, 4, 5
SOURCES = {"image": "IMAGE", "file": "FILE", "render": "RENDER", "compositor": "COMPOSITOR"}
BACKENDS = {"local": "LOCAL", "scene-z": "SCENE_Z"}


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse would sys.exit() and take Blender down with it
        raise _UsageError(f"{self.prog}: error: {message}")


class _UsageError(Exception):
    pass


def _parser():
    ap = _Parser(prog="blender -b FILE.blend -c fathom", description="Depth maps with Fathom.")
    sub = ap.add_subparsers(dest="command", required=True, parser_class=_Parser)
    gen = sub.add_parser("generate", help="estimate a depth map and add it to the scene's compositor")
    gen.add_argument("--source", nargs="+", metavar="KIND [NAME|PATH]", required=True,
                     help="image NAME (an image datablock), file PATH (an image file), render (the active "
                          "camera's render) or compositor (the render through the compositor)")
    gen.add_argument("--backend", choices=sorted(BACKENDS), default="local",
                     help="local: the depth model (default); scene-z: the render's exact Z pass")
    gen.add_argument("--output", metavar="PATH", help="write here instead of //generated/ (never overwrites)")
    gen.add_argument("--save", action="store_true", help="save the .blend afterwards (keeps the new image and node)")
    gen.add_argument("--model", help="model id (see the catalogue)")
    gen.add_argument("--resolution", type=int, help=f"short side the network sees, {MIN_RESOLUTION}..{MAX_RESOLUTION}")
    gen.add_argument("--invert", action="store_true", default=None, help="far = bright")
    gen.add_argument("--normalization", choices=NORMALIZATIONS)
    gen.add_argument("--format", dest="output_format", choices=OUTPUT_FORMATS)
    return ap


def main(argv) -> int:
    """The registered CLI handler: argv after `-c fathom`; returns the exit code."""
    try:
        args = _parser().parse_args(list(argv))
    except _UsageError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:  # --help
        return EXIT_OK if not exc.code else EXIT_USAGE
    return _generate(args)


def _generate(args) -> int:
    kind, *rest = args.source
    needs_name = kind in ("image", "file")
    if kind not in SOURCES or len(rest) != (1 if needs_name else 0):
        print(f"fathom: error: --source takes 'image NAME', 'file PATH', 'render' or 'compositor', "
              f"not {' '.join(args.source)!r}", file=sys.stderr)
        return EXIT_USAGE
    kwargs = {"source": SOURCES[kind], "output": args.output, "backend": BACKENDS[args.backend]}
    if needs_name:
        kwargs["image" if kind == "image" else "filepath"] = rest[0]
    overrides = {k: getattr(args, k) for k in ("model", "resolution", "invert", "normalization", "output_format")
                 if getattr(args, k) is not None}
    try:
        job, image, node = pipeline.generate(bpy.context, overrides=overrides, **kwargs)
        if args.save:
            if not bpy.data.filepath:
                raise results.OutputError("--save needs a saved .blend: open one with -b FILE.blend.")
            bpy.ops.wm.save_mainfile()
    except FathomError as exc:
        print(f"fathom: error: {exc}", file=sys.stderr)
        return _exit_code(exc)
    print(job.path)
    return EXIT_OK


def _exit_code(exc) -> int:
    if isinstance(exc, (ImageError, pipeline.SourceError, RenderCaptureError)):
        return EXIT_SOURCE
    if isinstance(exc, ModelError):
        return EXIT_MODEL
    if isinstance(exc, results.OutputError):
        return EXIT_OUTPUT
    return EXIT_FAILED
