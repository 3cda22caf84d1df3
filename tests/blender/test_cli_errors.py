"""The command line says what went wrong, with the right exit code, before any slow work (issue 10,
item 5): each defect found by trying it as a new user, reproduced here."""

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.blender.conftest import ROOT
from tests.blender.test_blender_extension import MAKE_IMAGE, SAMPLE_SCENE


@contextlib.contextmanager
def read_only(folder: Path):
    """``folder`` unwritable, for root too (a read-only bind mount; chmod does not stop root)."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    subprocess.run(["mount", "--bind", folder, folder], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", folder], check=True)
        yield
    finally:
        subprocess.run(["umount", folder], check=True)


@pytest.fixture
def photo_blend(blender, tmp_path):
    blender(
        MAKE_IMAGE,
        """
        img = make_image("Photo", 48, 32)
        img.pack()
        img.use_fake_user = True
        os.makedirs(tmp + "/shots")
        bpy.ops.wm.save_as_mainfile(filepath=tmp + "/shots/shot.blend")
    """,
    )
    return tmp_path / "shots" / "shot.blend"


def test_read_only_generated_folder_exits_5_before_the_model(fathom_cli, catalog_for, photo_blend, tmp_path):
    generated = photo_blend.parent / "generated"
    # A model file that is not a model: the run would fail with another message if it got that far.
    fake = tmp_path / "not-a-model.onnx"
    fake.write_bytes(b"not onnx")
    with read_only(generated):
        run = fathom_cli(
            "generate", "--source", "image", "Photo", blend=photo_blend, catalog=catalog_for(da2_small=fake)
        )
    assert run.returncode == 5, run.stderr
    assert "Traceback" not in run.stderr and str(generated) in run.stderr and "not writable" in run.stderr


def test_save_into_a_read_only_folder_exits_5_before_any_work(fathom_cli, catalog_for, photo_blend, tmp_path):
    fake = tmp_path / "not-a-model.onnx"
    fake.write_bytes(b"not onnx")
    out = tmp_path / "elsewhere" / "d.exr"
    out.parent.mkdir()
    with read_only(photo_blend.parent):
        run = fathom_cli(
            "generate",
            "--source",
            "image",
            "Photo",
            "--output",
            out,
            "--save",
            blend=photo_blend,
            catalog=catalog_for(da2_small=fake),
        )
    assert run.returncode == 5, run.stderr
    assert "--save" in run.stderr and "not writable" in run.stderr and "Traceback" not in run.stderr
    assert not out.exists()


def test_unsaved_session_with_save_says_so_before_writing(blender, fathom_cli, catalog_for, tiny_model_file, tmp_path):
    blender(
        MAKE_IMAGE,
        """
        img = make_image("Photo", 48, 32)
        img.filepath_raw = tmp + "/photo.png"; img.file_format = "PNG"; img.save()
    """,
    )
    out = tmp_path / "x.exr"
    run = fathom_cli(
        "generate", "--source", "file", tmp_path / "photo.png", "--output", out, "--save",
        catalog=catalog_for(da2_small=tiny_model_file),
    )  # fmt: skip
    assert run.returncode == 5 and "--save needs a saved .blend" in run.stderr, run.stderr
    assert not out.exists()  # nothing written that the user would have to find


@pytest.mark.parametrize(
    "args",
    [
        ("--resolution", "100"),
        ("--resolution", "5000"),
        ("--output", "x.exr", "--format", "png16"),
    ],
)
def test_bad_settings_are_usage_errors(fathom_cli, catalog_for, tiny_model_file, photo_blend, args):
    run = fathom_cli(
        "generate",
        "--source",
        "image",
        "Photo",
        *args,
        blend=photo_blend,
        catalog=catalog_for(da2_small=tiny_model_file),
    )
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and "fathom: error:" in run.stderr


def test_render_source_checks_the_model_before_rendering(blender, fathom_cli, catalog_for, tmp_path):
    blender(SAMPLE_SCENE, 'bpy.ops.wm.save_as_mainfile(filepath=tmp + "/scene.blend")')
    # A render would take seconds and print where it saved its picture (Fathom's temporary
    # fathom-render-* folder); a missing model must stop it first.
    run = fathom_cli(
        "generate",
        "--source",
        "render",
        blend=tmp_path / "scene.blend",
        catalog=catalog_for(da2_small=tmp_path / "absent.onnx"),
    )
    assert run.returncode == 4 and "absent.onnx" in run.stderr, run.stderr
    assert "fathom-render-" not in run.stdout + run.stderr


def test_missing_blend_file_in_blender_cli(blender_home, tmp_path):
    run = subprocess.run(
        [
            sys.executable,
            ROOT / "scripts" / "blender_cli.py",
            "--blend",
            tmp_path / "nope.blend",
            "--",
            "models",
            "list",
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, HOME=str(blender_home)),
        timeout=300,
    )
    assert run.returncode == 2 and "nope.blend" in run.stderr and "Traceback" not in run.stderr, run.stderr


def test_scene_z_files_do_not_name_a_model(blender, fathom_cli, catalog_for, tiny_model_file, tmp_path):
    blender(SAMPLE_SCENE, 'bpy.ops.wm.save_as_mainfile(filepath=tmp + "/scene.blend")')
    out = tmp_path / "z.exr"
    run = fathom_cli(
        "generate", "--source", "render", "--backend", "scene-z", "--output", out, blend=tmp_path / "scene.blend",
        catalog=catalog_for(da2_small=tiny_model_file),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    header = out.read_bytes()[:16384]
    assert b"da2-small" not in header and b"scene-z" in header
