"""What a finished generation shows (bridge.generation.show), in real Blender on the installed zip:
the Depth panel's thumbnail and small icon made from the depth array (so Blender starts no preview
job that reads the file), and the caption's size taken from the result's metadata, so drawing it
never decodes the file on the main thread. execute() runs the Generate operator's finishing steps
(one per timer tick when clicked) in one go."""

from tests.blender.test_blender_extension import MAKE_IMAGE


def test_thumbnail_icon_and_caption_without_decoding_the_file(blender, catalog_for, tiny_model_file):
    got = blender(
        MAKE_IMAGE,
        """
        from bl_ext.user_default.fathom.bridge.generation.show import describe
        props = bpy.context.scene.fathom
        props.image = make_image("Photo", 640, 360)
        props.resolution = 256
        save_blend()
        done = sorted(bpy.ops.fathom.generate_depth())
        result = props.result
        path = bpy.path.abspath(result.filepath)
        # The same file as a fresh datablock with the result's metadata: nothing decoded yet.
        fresh = bpy.data.images.load(path, check_existing=False)
        fresh["fathom"] = result["fathom"].to_dict()
        caption = describe(fresh)
        emit({"done": done, "result": result.name, "thumbnail": list(result.preview.image_size),
              "icon": list(result.preview.icon_size),
              "custom": [result.preview.is_image_custom, result.preview.is_icon_custom],
              "caption": caption, "decoded": fresh.has_data, "size": list(fresh.size)})
    """,
        catalog=catalog_for(da2_small=tiny_model_file),
    )
    assert got["done"] == ["FINISHED"] and got["result"] == "Photo_depth_001.exr", got
    assert got["thumbnail"] == [214, 120] and got["icon"] == [31, 18], got  # every 3rd, then every 7th pixel
    assert got["custom"] == [True, True], got
    assert got["caption"].startswith("640 x 360 · da2-small"), got
    assert got["decoded"] is False and got["size"] == [640, 360], got  # size read after the caption
