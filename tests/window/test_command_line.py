"""The real command lines a render farm runs, `blender -b shot.blend -c fathom ...`, with their exit
codes, in Debian's Blender with the extension installed by `blender --command extension install-file`.
The transcript (command lines, exit codes, stderr's last line) goes to out/test-artifacts/command-line.json."""

import shlex

from tests.window.conftest import blender_env, record, run


def test_command_lines_and_exit_codes(blender_home, scene_blend, catalogs, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    blend = str(scene_blend)
    steps = [  # (command after `blender`, expected exit code, what it shows)
        (["-b", "-c", "fathom", "models", "list"], 0, "the catalogue"),
        (
            ["-b", blend, "-c", "fathom", "generate", "--source", "image", "Photo", "--output", f"{out}/photo.exr"],
            0,
            "an image datablock's depth",
        ),
        (
            ["-b", blend, "-c", "fathom", "generate", "--source", "image", "Photo", "--output", f"{out}/photo.exr"],
            5,
            "never overwrites a file",
        ),
        (["-b", blend, "-c", "fathom", "generate", "--source", "image", "Nope"], 3, "an unknown image"),
        (["-b", blend, "-c", "fathom", "generate", "--source", "sideways"], 2, "a bad command line"),
        (
            [
                "-b",
                blend,
                "-c",
                "fathom",
                "generate",
                "--source",
                "render",
                "--backend",
                "scene-z",
                "--output",
                f"{out}/z.exr",
            ],
            0,
            "the render's exact Z pass",
        ),
        (
            ["-b", blend, "-c", "fathom", "generate", "--source", "render", "--save"],
            0,
            "the render's depth, saved into the file",
        ),
        (["-b", blend, "-c", "fathom", "setup", "displacement", "--save"], 0, "a displaced plane from that result"),
    ]
    transcript, failures = [], []
    for args, expected, what in steps:
        result = run(["blender", *args], env=blender_env(blender_home, catalogs["tiny"]), cwd=tmp_path)
        last = (result.stderr.strip().splitlines() or [""])[-1]
        transcript.append(
            {
                "command": shlex.join(["blender", *args]),
                "exit": result.returncode,
                "expected": expected,
                "what": what,
                "stderr_tail": last,
            }
        )
        if result.returncode != expected:
            failures.append(
                f"{shlex.join(args)}: exit {result.returncode}, expected {expected}\n"
                f"{result.stdout[-1500:]}\n{result.stderr[-1500:]}"
            )
    record("command-line", transcript)
    assert not failures, "\n\n".join(failures)
    assert (out / "photo.exr").stat().st_size > 0 and (out / "z.exr").stat().st_size > 0
    assert (scene_blend.parent / "generated" / "Scene_render_depth_001.exr").is_file()
    # What --save kept: the result image and the displaced plane, read back by this Blender.
    code = (
        "import bpy; print('@@', sorted(i.name for i in bpy.data.images if 'depth' in i.name), "
        "sorted(o.name for o in bpy.data.objects if o.name.startswith('Fathom')))"
    )
    got = run(["blender", "-b", blend, "--python-expr", code], env=blender_env(blender_home))
    line = next(line for line in got.stdout.splitlines() if line.startswith("@@ "))
    assert "Scene_render_depth_001.exr" in line and "Fathom Depth Plane" in line, line
