"""`blender -b shot.blend -c fathom ...`: Fathom from the command line, with exit codes.

    fathom generate --source image NAME | file PATH | render | compositor | node NAME | clip NAME
                    [--backend local|server|scene-z] [--online-mode] [--force] [--output PATH] [--save]
                    [--frames START-END[:STEP][,...]|all [--redo] [--no-stabilize] [--smoothing S]]
                    [settings]
    fathom pending list | fetch [--online-mode] [--wait SECONDS] [--save]
    fathom models list | download ID | verify ID
    fathom setup displacement|dof|fog|stereo|normal|mesh|remove [--depth NAME] [options]  (bridge/cli/setups.py)

Exit codes: 0 done, 1 failed (see stderr), 2 bad command line or settings, 3 unusable source (missing or
corrupt image, no camera, nothing to composite), 4 model missing or unknown, 5 nowhere to write
(unsaved .blend, existing file, unwritable folder), 6 the depth server refused, failed or could not be reached (not
enough tokens, API key, online access off; a paid job it still owes stays pending in the file).
"""

import argparse
import sys
from pathlib import Path

import bpy

from ...engine.errors import FathomError, ImageError, InvalidSettingsError, ModelError
from ...engine.settings import (
    MAX_RESOLUTION,
    MIN_RESOLUTION,
    NORMALIZATIONS,
    OUTPUT_FORMATS,
    QUALITIES,
    SETTING_NAMES,
    TILINGS,
)
from ..capture.render import RenderCaptureError
from ..capture.sources import SourceError
from ..generation import backends, results
from ..kinds import BACKENDS, SOURCES
from . import setups as setups_cli

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SOURCE, EXIT_MODEL, EXIT_OUTPUT, EXIT_SERVER = 0, 1, 2, 3, 4, 5, 6
_ONLINE_HELP = (
    "let the Server backend go online for this run (like blender --online-mode) even when online "
    "access is off in the preferences"
)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse would sys.exit() and take Blender down with it
        raise _UsageError(f"{self.prog}: error: {message}")


class _UsageError(Exception):
    pass


def _parser():
    ap = _Parser(prog="blender -b FILE.blend -c fathom", description="Depth maps with Fathom.")
    sub = ap.add_subparsers(dest="command", required=True, parser_class=_Parser)
    gen = sub.add_parser("generate", help="estimate a depth map and add it to the scene's compositor")
    gen.add_argument(
        "--source",
        nargs="+",
        metavar="KIND [NAME|PATH]",
        required=True,
        help="image NAME (an image datablock), file PATH (an image file), render (the active "
        "camera's render), compositor (the render through the compositor) or node NAME (what is "
        "wired into that Depth Map node, which then carries the result)",
    )
    gen.add_argument(
        "--backend",
        choices=sorted(BACKENDS),
        default="local",
        help="local: the depth model (default); server: the depth server in the preferences "
        "(uses tokens); scene-z: the render's exact Z pass",
    )
    gen.add_argument("--online-mode", action="store_true", help=_ONLINE_HELP)
    gen.add_argument(
        "--force",
        action="store_true",
        help="server: generate again even if an identical result was made before (spends tokens)",
    )
    gen.add_argument("--output", metavar="PATH", help="write here instead of //generated/ (never overwrites)")
    gen.add_argument("--save", action="store_true", help="save the .blend afterwards (keeps the new image and node)")
    gen.add_argument(
        "--frames",
        metavar="SPEC",
        help="a depth sequence: START-END, START-END:STEP, frames and ranges joined by commas, or 'all' (the "
        "scene's range; every frame of an image sequence or movie): one numbered file per frame in one folder; "
        "frames done before with the same settings are skipped, and processes sharing the folder (a render "
        "farm) each take different frames",
    )
    gen.add_argument("--redo", action="store_true", help="with --frames: make every frame again")
    gen.add_argument(
        "--no-stabilize",
        dest="stabilize",
        action="store_false",
        help="with --frames: leave each frame's depth on its own scale (stabilised by default)",
    )
    gen.add_argument(
        "--smoothing", type=float, default=0.0, help="with --frames: 0 (default) to below 1, evens out noise over time"
    )
    gen.add_argument("--model", help="model id (see the catalogue)")
    gen.add_argument("--resolution", type=int, help=f"short side the network sees, {MIN_RESOLUTION}..{MAX_RESOLUTION}")
    gen.add_argument("--invert", action="store_true", default=None, help="far = bright")
    gen.add_argument("--normalization", choices=NORMALIZATIONS)
    gen.add_argument("--format", dest="output_format", choices=OUTPUT_FORMATS)
    gen.add_argument("--tiling", choices=TILINGS, help="past one network pass: detail (tiled, default) or whole")
    gen.add_argument("--quality", choices=QUALITIES, help="best (exact, default), standard (int8) or draft")

    models = sub.add_parser("models", help="list, download or verify depth models")
    pend = sub.add_parser("pending", help="paid depth maps this file still waits for from the depth server")
    psub = pend.add_subparsers(dest="action", required=True, parser_class=_Parser)
    psub.add_parser("list", help="the pending jobs: id, server, source")
    fetch = psub.add_parser("fetch", help="download the finished ones into their nodes (failed ones were refunded)")
    fetch.add_argument("--online-mode", action="store_true", help=_ONLINE_HELP)
    fetch.add_argument("--wait", type=float, default=60.0, help="seconds to wait for jobs still running (60)")
    fetch.add_argument("--save", action="store_true", help="save the .blend afterwards")

    msub = models.add_subparsers(dest="action", required=True, parser_class=_Parser)
    msub.add_parser("list", help="every known model, its licence and whether it is installed")
    for action, text in (
        ("download", "download a model (needs online access: blender --online-mode)"),
        ("verify", "check an installed model's sha256"),
    ):
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
    if args.command == "pending":
        return _pending(args)
    if args.command == "setup":
        return setups_cli.main(args, _exit_code)
    return _generate(args)


def _models(args) -> int:
    from ...engine.catalog import license_notice
    from ...engine.download import human_size
    from ..prefs import model_store

    try:
        store = model_store(bpy.context)
        if args.action == "list":
            for entry in store.list_models():
                info = entry.info
                size = info.size
                if size is None and entry.path is not None and Path(entry.path).is_file():
                    size = Path(entry.path).stat().st_size  # a catalogue entry naming a local file
                print(f"{info.id}\t{entry.status}\t{human_size(size)}\t{entry.path}\n    {license_notice(info)}")
            return EXIT_OK
        if args.action == "download":
            path = store.download(
                args.model, progress=_ProgressLine(f"Downloading {args.model}"), allow_network=bpy.app.online_access
            )
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
    needs_name = kind in ("image", "file", "node", "clip")
    if (kind not in SOURCES and kind != "clip") or len(rest) != (1 if needs_name else 0):
        print(
            f"fathom: error: --source takes 'image NAME', 'file PATH', 'render', 'compositor', 'node NAME' or "
            f"'clip NAME', "
            f"not {' '.join(args.source)!r}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    overrides = {k: getattr(args, k) for k in SETTING_NAMES if getattr(args, k, None) is not None}
    if args.frames is not None or kind == "clip":
        return _generate_sequence(args, kind, rest[0] if rest else None, overrides)
    kwargs = {"source": SOURCES[kind], "output": args.output, "backend": BACKENDS[args.backend]}
    if args.backend == "server":
        kwargs.update(force=args.force, allow_online=args.online_mode)
    if needs_name:
        kwargs[{"image": "image", "file": "filepath", "node": "node"}[kind]] = rest[0]
    job = None
    try:
        if args.save:
            results.check_save()  # before any work: nothing written that --save cannot keep
        job, image, node = backends.generate(bpy.context, overrides=overrides, **kwargs)
        if args.save:
            results.save_blend()
    except FathomError as exc:
        written = f" (the depth map was written to {job.path})" if job is not None and job.path else ""
        print(f"fathom: error: {exc}{written}", file=sys.stderr)
        if _is_still_pending(exc):
            print(f"fathom: {_keep_pending(exc, args.save)}", file=sys.stderr)
        return _exit_code(exc)
    if job.reused:
        print(
            "fathom: reused an identical depth map from the depth server, no tokens spent (--force generates again)",
            file=sys.stderr,
        )
    print(job.path)
    return EXIT_OK


def _is_still_pending(exc) -> bool:
    from ..remote.job import StillPendingError

    return isinstance(exc, StillPendingError)


def _keep_pending(exc, save: bool) -> str:
    """A paid job the server still owes: where it is kept. With --save the .blend is saved with its
    record (the job is in the file); without, the journal next to it keeps it, or only its id."""
    from ..remote import pending

    blend = bpy.data.filepath
    fetch = f"blender -b {blend or 'FILE.blend'} -c fathom pending fetch --online-mode --save"
    if save and blend:
        results.save_blend()
        return f"saved {blend} with the pending depth map {exc.job_id}: get it later with `{fetch}`"
    journal = pending.journal_path(exc.job_id)
    if journal is not None:
        return (
            f"the .blend was not saved (no --save); the pending depth map {exc.job_id} is kept in {journal}, "
            f"which this file reads when it is opened: get it later with `{fetch}`"
        )
    return (
        f"the .blend was not saved (no --save) and nothing else keeps this job: the depth map {exc.job_id} is "
        f"paid for; download it from {exc.server}/v2/artworks/{exc.job_id} with your API key"
    )


def _generate_sequence(args, kind, name, overrides) -> int:
    from ...engine.frames import as_frames, describe
    from ..generation.sequence import generate_sequence

    try:
        frames = None if args.frames in (None, "all") else as_frames(args.frames)
    except FathomError as exc:
        print(f"fathom: error: --frames: {exc}", file=sys.stderr)
        return EXIT_USAGE
    kwargs = {"source": SOURCES.get(kind), "output": args.output, "backend": BACKENDS[args.backend]}
    if kind in ("image", "file", "clip"):
        kwargs[{"image": "image", "file": "filepath", "clip": "clip"}[kind]] = name
    try:
        job, _, _ = generate_sequence(
            bpy.context,
            frames,
            overrides=overrides,
            stabilize=args.stabilize,
            smoothing=args.smoothing,
            redo=args.redo,
            allow_online=args.online_mode,
            progress=_StepLine(),
            **kwargs,
        )
        if args.save:
            results.save_blend()
    except FathomError as exc:
        print(f"fathom: error: {exc}", file=sys.stderr)
        return _exit_code(exc)
    r = job.result
    print(f"fathom: frames written: {describe(r.written)}", file=sys.stderr)
    print(f"fathom: frames already done: {describe(r.skipped)}", file=sys.stderr)
    print(f"fathom: frames by another process: {describe(r.by_others)}", file=sys.stderr)
    if r.flicker_before is not None and job.stabilize and args.backend != "scene-z":
        print(f"fathom: flicker {r.flicker_before:.2f} % before, {r.flicker_after:.2f} % after", file=sys.stderr)
    if r.written:
        print(f"fathom: {r.frames_per_second:.2f} frames/s", file=sys.stderr)
    print(r.folder)
    return EXIT_OK


def _pending(args) -> int:
    from ..remote import fetch, pending

    found = pending.entries()
    if args.action == "list":
        for entry in found:
            print(f"{entry['job']}\t{entry['server']}\t{entry['scene']}\t{entry['label']}")
        return EXIT_OK
    if not found:
        print("fathom: nothing is pending in this file", file=sys.stderr)
        return EXIT_OK
    try:
        job = fetch.fetch_job(bpy.context, follow_seconds=args.wait, allow_online=args.online_mode)
        job.run(progress=_StepLine())
        job.apply(bpy.context)
        if args.save:
            results.save_blend()
    except FathomError as exc:
        print(f"fathom: error: {exc}", file=sys.stderr)
        return _exit_code(exc)
    for outcome in job.outcomes:
        if outcome.job is not None:
            print(outcome.job.path)
        else:
            print(f"fathom: {outcome.message}", file=sys.stderr)
    return EXIT_OK if not pending.entries() and all(o.job for o in job.outcomes) else EXIT_SERVER


class _StepLine:
    """Each new progress message once on stderr."""

    def __init__(self):
        self.last = None

    def __call__(self, fraction, message):
        if message != self.last:
            self.last = message
            print(f"{message} ({100 * fraction:.0f} %)", file=sys.stderr)


def _exit_code(exc) -> int:
    from ...engine.remote import RemoteError
    from ..remote.job import StillPendingError
    from ..remote.online import OfflineError

    if isinstance(exc, InvalidSettingsError):  # --resolution out of range, --output vs --format
        return EXIT_USAGE
    if isinstance(exc, (RemoteError, OfflineError, StillPendingError)):
        return EXIT_SERVER
    from ..capture.frames import FrameSourceError

    if isinstance(exc, (ImageError, SourceError, RenderCaptureError, FrameSourceError)):
        return EXIT_SOURCE
    if isinstance(exc, ModelError):
        return EXIT_MODEL
    if isinstance(exc, results.OutputError):
        return EXIT_OUTPUT
    return EXIT_FAILED
