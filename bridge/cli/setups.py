"""`fathom setup ...`: the depth workflows from the command line (bridge/cli/main.py adds the subcommand).

    fathom setup displacement|dof|fog|stereo|normal|mesh|remove [--depth NAME] [--picture NAME] [options] [--save]

Each prints what it made (a node, object, image or file) and returns an exit code of bridge/cli/main.py.
"""

import sys

import bpy

from ..setups import common, displacement, dof, export, fog, stereo

KINDS = ("displacement", "dof", "fog", "stereo", "normal", "mesh", "remove")


def add_parser(sub):
    p = sub.add_parser(
        "setup", help="build a depth workflow: displacement, dof, fog, stereo, normal, mesh; or remove one"
    )
    p.add_argument("kind", choices=KINDS)
    p.add_argument(
        "--depth",
        "--image",
        dest="depth",
        metavar="NAME",
        help="depth image datablock (default: the newest Fathom result)",
    )
    p.add_argument("--picture", metavar="NAME", help="picture datablock (default: the depth map's source)")
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
    g = p.add_argument_group("dof")
    g.add_argument("--f-stop", type=float, default=2.8)
    g.add_argument("--blur-max", type=float, default=16.0)
    g.add_argument("--focus", type=float, default=0.0, help="focus distance (0: the picture's centre)")
    g.add_argument("--focus-at", type=float, nargs=2, metavar=("X", "Y"), help="focus on this point, 0..1")
    g.add_argument("--near", type=float, help="dof: distance of depth 1 (default 1); fog: depth where it starts")
    g.add_argument("--far", type=float, help="dof: distance of depth 0 (default 0: infinite); fog: where it is full")
    g = p.add_argument_group("fog")
    g.add_argument("--color", type=float, nargs=3, default=(0.75, 0.8, 0.85))
    g.add_argument("--density", type=float, default=1.0)
    g = p.add_argument_group("stereo, normal, mesh")
    g.add_argument("--divergence", type=float, default=2.5)
    g.add_argument("--layout", choices=("side-by-side", "top-bottom", "anaglyph"), default="side-by-side")
    g.add_argument("--normal-strength", type=float, default=1.0)
    g.add_argument("--format", dest="mesh_format", choices=("obj", "ply"), default="obj")
    g.add_argument("--output", metavar="PATH", help="mesh: write here (never overwrites)")
    return p


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
        obj = displacement.setup(
            scene,
            depth,
            picture,
            target=args.target,
            distance=args.distance,
            strength=args.strength,
            midlevel=args.midlevel,
            resolution=args.resolution,
            subdivisions=args.subdivisions,
            smooth=args.smooth,
            stretch=args.stretch,
            parallax=args.parallax.upper(),
            amplitude=args.amplitude,
        )
        return obj.name
    if args.kind == "dof":
        node = dof.setup(
            scene,
            depth,
            picture,
            f_stop=args.f_stop,
            blur_max=args.blur_max,
            focus_distance=args.focus,
            near=1.0 if args.near is None else args.near,
            far=args.far or 0.0,
        )
        if args.focus_at:
            dof.pick_focus(scene, *args.focus_at)
        return f"{node.name}: focus {node[common.PARAMS_KEY]['focus_distance']:.4g}"
    if args.kind == "fog":
        node = fog.setup(
            scene,
            depth,
            picture,
            color=args.color,
            density=args.density,
            near=1.0 if args.near is None else args.near,
            far=args.far or 0.0,
        )
        return node.name
    if args.kind == "stereo":
        picture = picture or common.source_picture(depth)
        if picture is None:
            raise common.SetupError("No picture: name it with --picture NAME.")
        layout = {"side-by-side": "SIDE_BY_SIDE", "top-bottom": "TOP_BOTTOM", "anaglyph": "ANAGLYPH"}[args.layout]
        return bpy.path.abspath(stereo.setup(picture, depth, divergence=args.divergence, layout=layout).filepath)
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
