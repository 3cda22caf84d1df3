"""`fathom setup ...`: the depth workflows from the command line (bridge/cli/main.py adds the subcommand).

    fathom setup displacement|dof|fog|stereo|normal|mesh|metric|remove [--depth NAME] [--picture NAME] [options]
                 [--save]

`setup metric` turns a network's relative depth map into scene distances: fitted to the Scene Z of the
same render (default), or to two or more --point U V DISTANCE picked in the picture.

Each prints what it made (a node, object, image or file) and returns an exit code of bridge/cli/main.py.
"""

import argparse
import math
import sys

import bpy

from ..setups import common, displacement, dof, export, fog, metric, pictures, stereo

KINDS = ("displacement", "dof", "fog", "stereo", "normal", "mesh", "metric", "remove")
# Options passed on as they are: named as displacement.setup's keywords.
DISPLACEMENT_OPTIONS = "target distance strength midlevel resolution subdivisions smooth stretch amplitude".split()


def add_parser(sub):
    p = sub.add_parser(
        "setup", help="build a depth workflow: displacement, dof, fog, stereo, normal, mesh, metric; or remove one"
    )
    p.add_argument("kind", choices=KINDS)
    p.add_argument(
        "--depth",
        "--image",
        dest="depth",
        metavar="NAME",
        help="depth image datablock (default: the newest Fathom result)",
    )
    p.add_argument(
        "--picture",
        metavar="NAME",
        help="picture datablock (default: the depth map's source; for render depth the render)",
    )
    p.add_argument("--save", action="store_true", help="save the .blend afterwards")
    p.add_argument("--what", choices=("displacement", "dof", "fog", "all"), default="all", help="remove: which setup")
    g = p.add_argument_group("displacement")
    g.add_argument("--distance", type=float, default=10.0)
    g.add_argument("--strength", type=float)
    g.add_argument("--midlevel", type=float, default=0.0)
    g.add_argument("--resolution", type=int, default=256)
    g.add_argument("--subdivisions", type=int, default=1)
    g.add_argument("--smooth", type=int, default=0)
    g.add_argument("--stretch", type=float, default=0.0)
    g.add_argument("--object", dest="target", metavar="NAME", help="displace this mesh object instead of a plane")
    g.add_argument("--parallax", choices=("none", "dolly", "orbit"), default="none")
    g.add_argument("--amplitude", type=float, default=0.1)
    g.add_argument(
        "--relative", action="store_true", help="displace by strength even when the depth map has real distances"
    )
    g = p.add_argument_group("dof")
    g.add_argument("--f-stop", type=float, default=2.8)
    g.add_argument("--blur-max", type=float, default=16.0)
    g.add_argument("--focus", type=float, default=0.0, help="focus distance (0: the picture's centre)")
    g.add_argument("--focus-at", type=float, nargs=2, metavar=("X", "Y"), help="focus on this point, 0..1")
    g.add_argument(
        "--near",
        type=float,
        help="dof: read a relative map with depth 1 this far (default 1); fog: "
        "where it starts (a distance, or a depth value for a relative map)",
    )
    g.add_argument(
        "--far",
        type=float,
        help="dof: read a relative map with depth 0 this far (default infinite); fog: where it is full",
    )
    g = p.add_argument_group("fog")
    g.add_argument("--color", type=float, nargs=3, default=(0.75, 0.8, 0.85))
    g.add_argument("--density", type=float, default=1.0)
    g = p.add_argument_group("stereo, normal, mesh")
    g.add_argument(
        "--stereo-mode",
        choices=("auto", "rig", "divergence"),
        default="auto",
        help="stereo: a camera rig in scene units (depth with distances) or a divergence (auto: rig when it can)",
    )
    g.add_argument(
        "--eye",
        choices=("left", "right", "centre"),
        help="stereo: which eye the picture is (default: the camera's Stereoscopy pivot for a rig from the camera, "
        "else left)",
    )
    g.add_argument(
        "--interaxial", type=float, help="stereo rig: distance between the cameras (default: the camera's Stereoscopy)"
    )
    g.add_argument(
        "--convergence",
        type=_convergence,
        help="stereo rig: convergence distance, or 'parallel' (default: the camera's Stereoscopy)",
    )
    g.add_argument("--divergence", type=float, default=2.5, help="stereo: largest shift between the eyes, %% of width")
    g.add_argument("--layout", choices=("side-by-side", "top-bottom", "anaglyph"), default="side-by-side")
    g.add_argument("--normal-strength", type=float, default=1.0)
    g.add_argument("--format", dest="mesh_format", choices=("obj", "ply"), default="obj")
    g.add_argument("--output", metavar="PATH", help="mesh: write here (never overwrites)")
    g = p.add_argument_group("metric")
    g.add_argument(
        "--point",
        type=float,
        nargs=3,
        action="append",
        metavar=("U", "V", "DISTANCE"),
        help="a point of the picture (0..1 from the left and from the bottom) and its distance; "
        "two or more fit to these instead of the Scene Z",
    )
    return p


def _convergence(text):
    if text.lower() == "parallel":
        return math.inf
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a distance: give a positive number or 'parallel'")
    return value


def _options(args, *names) -> dict:
    """The options named as the setup's keywords, for passing on."""
    return {name: getattr(args, name) for name in names}


def run(args) -> str:
    """Build what ``args`` asks for; returns a line saying what was made. Raises FathomError."""
    scene = bpy.context.scene
    if args.kind == "remove":
        removers = {"displacement": displacement.remove, "dof": dof.remove, "fog": fog.remove}
        kinds = removers if args.what == "all" else [args.what]
        return f"removed {sum(removers[k](scene) for k in kinds)} item(s)"
    if args.kind == "mesh":
        return str(export.export_mesh(args.target, args.mesh_format.upper(), path=args.output))
    depth = common.find_image(args.depth, "depth image") if args.depth else common.default_depth_image(bpy.context)
    if depth is None:
        raise common.SetupError("No depth image: generate one first or name it with --depth NAME.")
    picture = args.picture or None
    if args.kind == "displacement":
        options = _options(args, *DISPLACEMENT_OPTIONS)
        options.update(parallax=args.parallax.upper(), real_distances=not args.relative)
        obj = displacement.setup(scene, depth, picture, **options)
        values = obj[common.PARAMS_KEY]
        how = "at real distances" if values["metric"] else "by relative depth"
        return f"{obj.name}: {how} ({values['units']}); picture {values['colour'] or 'none'}"
    if args.kind == "metric":
        if args.point:
            image, fit = metric.align_to_points(depth, args.point)
        else:
            image, fit = metric.align_to_scene_z(scene, depth)
        return f"{image.name}: {fit.describe()}; {fit.units.describe()}"
    if args.kind == "dof":
        node = dof.setup(
            scene,
            depth,
            picture,
            **_options(args, "f_stop", "blur_max", "near", "far"),
            focus_distance=args.focus,
            real_distances=args.near is None and args.far is None,
        )
        if args.focus_at:
            dof.pick_focus(scene, *args.focus_at)
            node = dof.defocus_node(scene)
        return f"{node.name}: {dof.describe_focus(node)}"
    if args.kind == "fog":
        node = fog.setup(scene, depth, picture, **_options(args, "color", "density", "near", "far"))
        values = node[common.PARAMS_KEY]
        unit = " scene units" if values["real"] else " (depth values)"
        return f"{node.name}: from {values['near']:.4g} to {values['far']:.4g}{unit}"
    if args.kind == "stereo":
        picture = pictures.picture_for(scene, depth, picture)
        if picture is None:
            raise common.SetupError(f"No picture for '{depth.name}': name it with --picture NAME.")
        layout = {"side-by-side": "SIDE_BY_SIDE", "top-bottom": "TOP_BOTTOM", "anaglyph": "ANAGLYPH"}[args.layout]
        from_camera = args.interaxial is None and args.convergence is None
        convergence = 1.95 if args.convergence is None else args.convergence
        image, report, warnings = stereo.setup(
            picture,
            depth,
            mode=args.stereo_mode.upper(),
            eye={"left": "LEFT", "right": "RIGHT", "centre": "CENTER", None: None}[args.eye],
            divergence=args.divergence,
            interaxial=0.065 if args.interaxial is None else args.interaxial,
            convergence=1.95 if math.isinf(convergence) else convergence,
            convergence_mode="PARALLEL" if math.isinf(convergence) else "OFFAXIS",
            use_camera=from_camera,
            layout=layout,
            scene=scene,
        )
        print(report)
        for warning in warnings:
            print(f"fathom: warning: {warning}", file=sys.stderr)
        return bpy.path.abspath(image.filepath)
    image = export.normals(depth, strength=args.normal_strength)  # normal
    return bpy.path.abspath(image.filepath)


def main(args, exit_code) -> int:
    """The subcommand: run, save when asked, errors on stderr with ``exit_code(exc)``."""
    from ...engine.errors import FathomError
    from ..generation import results

    try:
        made = run(args)
        if args.save:
            results.save_blend()
    except FathomError as exc:
        print(f"fathom: error: {exc}", file=sys.stderr)
        return 3 if isinstance(exc, common.MissingImageError) else exit_code(exc)  # 3: unusable source
    print(made)
    return 0
