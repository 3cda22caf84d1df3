"""`blender -b shot.blend -c fathom ...`: Fathom from the command line, with exit codes.

    fathom generate --source image NAME | file PATH | render | compositor
                    [--backend local|scene-z] [--output PATH] [--save] [settings]
    fathom models list | download ID | verify ID
    fathom setup displacement|dof|fog|stereo|normal|mesh|remove [--depth NAME] [options]  (bridge/setups/cli.py)

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
from .setups import cli as setups_cli

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

    models = sub.add_parser("models", help="list, download or verify depth models")
    msub = models.add_subparsers(dest="action", required=True, parser_class=_Parser)
    msub.add_parser("list", help="every known model, its licence and whether it is installed")
    for action, text in (("download", "download a model (needs online access: blender --online-mode)"),
                         ("verify", "check an installed model's sha256")):
        msub.add_parser(action, help=text).add_argument("model", help="model id, as `models list` shows")
    setups_cli.add_parser(sub)
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
    if args.command == "models":
        return _models(args)
    if args.command == "setup":
        return setups_cli.main(args, _exit_code)
    return _generate(args)


def _models(args) -> int:
    from ..engine.catalog import license_notice
    from ..engine.download import human_size
    from ..preferences import model_store
    try:
        store = model_store(bpy.context)
        if args.action == "list":
            for entry in store.list_models():
                info = entry.info
                print(f"{info.id}\t{entry.status}\t{human_size(info.size)}\t{entry.path}\n"
                      f"    {license_notice(info)}")
            return EXIT_OK
        if args.action == "download":
            path = store.download(args.model, progress=_ProgressLine(f"Downloading {args.model}"),
                                  allow_network=bpy.app.online_access)
        else:
            path = store.verify(args.model, progress=_ProgressLine(f"Verifying {args.model}"))
    except FathomError as exc:
        print(f"fathom: error: {exc}", file=sys.stderr)
        return _exit_code(exc)
    print(path)
    return EXIT_OK


class _ProgressLine:
    """done/total on stderr, a line every 10 %, so logs of farm jobs stay readable."""

    def __init__(self, label):
        self.label, self.shown = label, -1

    def __call__(self, done, total):
        if total:
            tenth = int(10 * done / total)
            if tenth != self.shown:
                self.shown = tenth
                print(f"{self.label}: {100 * done / total:.0f} %", file=sys.stderr)


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
