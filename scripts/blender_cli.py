"""Run Fathom's command line through the bpy module, which has no `blender` executable.

    python scripts/blender_cli.py [--home DIR] [--install ZIP] [--blend FILE] [-- FATHOM ARGS...]

is what `blender -b FILE -c fathom FATHOM ARGS...` does in a Blender installation:
  --home DIR     use DIR as the home folder, so Blender's user profile (preferences, extensions)
                 lives in DIR/.config/blender/ (a throwaway profile for tests and the demo).
                 It has to be set before bpy is imported, which reads it then.
  --install ZIP  install and enable an extension zip into that profile and save the preferences.
  --blend FILE   open this .blend before running the command.
Then it calls the handler the extension registered with `bpy.utils.register_cli_command("fathom",
...)` and exits with its exit code. Run it with .venv-blender/bin/python (bpy 5.0.1); it also runs
with bpy 4.2 (.venv-blender42), whose wm.read_userpref() crashes: there the profile's other
preferences are not loaded, only the installed Fathom enabled.
"""

import argparse
import os
import sys


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    ours, fathom_args = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", help="home folder holding the Blender profile to use")
    ap.add_argument("--install", metavar="ZIP", help="install and enable this extension zip first")
    ap.add_argument("--blend", metavar="FILE", help="open this .blend first")
    args = ap.parse_args(ours)
    if args.blend and not os.path.isfile(args.blend):
        ap.error(f"--blend {args.blend}: no such .blend file")  # exit 2, before Blender starts
    if args.home:
        os.makedirs(args.home, exist_ok=True)
        os.environ["HOME"] = os.path.abspath(args.home)
        os.environ.pop("XDG_CONFIG_HOME", None)  # Blender would prefer it to HOME

    import bpy  # reads HOME now

    if args.install:
        install(os.path.abspath(args.install))
    else:
        load_profile()
    if args.blend:
        try:
            bpy.ops.wm.open_mainfile(filepath=os.path.abspath(args.blend))
        except RuntimeError as exc:  # not a .blend, or one this Blender cannot read
            print(f"blender_cli: cannot open {args.blend}: {str(exc).strip()}", file=sys.stderr)
            return 2
    if not fathom_args:
        return 0
    handler = cli_handler()
    if handler is None:
        print(
            "fathom: the Fathom extension is not installed and enabled in this Blender profile "
            "(install it with --install dist/fathom-<version>-<platform>.zip).",
            file=sys.stderr,
        )
        return 1
    return handler(fathom_args)


def _userpref_segfaults():
    """bpy 4.2's wm.read_userpref() crashes the process (exit 139), on a fresh profile or not."""
    import bpy

    return bpy.app.version[:2] == (4, 2)


def install(zip_path):
    """Install and enable the extension zip in the profile, and save the preferences."""
    import addon_utils
    import bpy

    if not _userpref_segfaults():
        bpy.ops.wm.read_userpref()
    result = bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=False)
    if result != {"FINISHED"}:
        sys.exit(f"Installing {zip_path} failed: {result}")
    name = fathom_module_name()
    if name is None or addon_utils.enable(name, default_set=True) is None:
        sys.exit(f"Installing {zip_path} failed: the Fathom extension did not enable (see above)")
    bpy.ops.wm.save_userpref()


def load_profile():
    """The bpy module starts with factory preferences: load the profile's (its enabled add-ons among
    them). On 4.2, where that crashes, enable the installed Fathom instead (other preferences stay
    factory ones there)."""
    import addon_utils
    import bpy

    if not _userpref_segfaults():
        bpy.ops.wm.read_userpref()
        return
    name = fathom_module_name()
    if name is not None:
        addon_utils.enable(name, default_set=True)


def fathom_module_name():
    """The module name of the installed Fathom extension (bl_ext.<repo>.fathom), or None."""
    import addon_utils

    return next(
        (
            m.__name__
            for m in addon_utils.modules(refresh=True)
            if m.__name__.startswith("bl_ext.") and m.__name__.rsplit(".", 1)[-1] == "fathom"
        ),
        None,
    )


def cli_handler():
    """The function the enabled extension registered as the `fathom` command."""
    import addon_utils

    for module in addon_utils.modules():
        name = module.__name__
        if name.startswith("bl_ext.") and name.rsplit(".", 1)[-1] == "fathom" and addon_utils.check(name)[1]:
            return sys.modules[name].bridge.cli.main.main
    return None


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.exit(code)
