"""The tiling choice in real Blender: the scene setting reaches the engine, and the result (its
file and its image) says whether tiles were used and how many."""

from engine.encode import read_metadata
from tests.blender.test_blender_extension import MAKE_IMAGE


def test_tiling_choice_and_what_the_result_records(blender, catalog_for, tiny_model_file):
    got = blender(
        MAKE_IMAGE,
        """
        from bl_ext.user_default.fathom.engine.encode import read_metadata
        props = bpy.context.scene.fathom
        props.image = make_image("Wide", 320, 180)
        save_blend()
        default = props.tiling
        props.resolution = 1024  # more than one network pass holds
        made = {}
        for tiling in ("detail", "whole"):
            props.tiling = tiling
            bpy.ops.fathom.generate_depth()
            image = max((i for i in bpy.data.images if "fathom" in i), key=lambda i: i.filepath)
            meta = read_metadata(bpy.path.abspath(image.filepath))
            made[tiling] = {"image_tiles": image["fathom"]["tiles"], "file_tiles": meta["fathom.tiles"],
                            "tiled": meta["fathom.tiled"], "setting": image["fathom"]["settings"]["tiling"]}
        emit({"default": default, "made": made})
    """,
        catalog=catalog_for(da2_small=tiny_model_file),
    )
    assert got["default"] == "detail"
    detail, whole = got["made"]["detail"], got["made"]["whole"]
    assert detail["image_tiles"] > 1 and detail["file_tiles"] == str(detail["image_tiles"])
    assert detail["tiled"] == "true" and detail["setting"] == "detail"
    assert whole == {"image_tiles": 1, "file_tiles": "1", "tiled": "false", "setting": "whole"}


def test_cli_tiling_option(blender, fathom_cli, catalog_for, tiny_model_file, tmp_path):
    blender(
        MAKE_IMAGE,
        """
        img = make_image("Wide", 320, 180)
        img.pack()
        img.use_fake_user = True  # an image nothing uses is not saved
        save_blend()
    """,
    )
    blend, catalog = tmp_path / "shot.blend", catalog_for(da2_small=tiny_model_file)
    for tiling, tiled in (("whole", "false"), ("detail", "true")):
        out = tmp_path / f"{tiling}.exr"
        done = fathom_cli(
            "generate",
            "--source",
            "image",
            "Wide",
            "--output",
            out,
            "--resolution",
            "1024",
            "--tiling",
            tiling,
            blend=blend,
            catalog=catalog,
        )
        assert done.returncode == 0, done.stderr
        got = read_metadata(out)
        assert got["fathom.tiled"] == tiled and '"tiling": "' + tiling + '"' in got["fathom.settings"]
    bad = fathom_cli("generate", "--source", "image", "Wide", "--tiling", "mosaic", blend=blend, catalog=catalog)
    assert bad.returncode == 2 and "--tiling" in bad.stderr
