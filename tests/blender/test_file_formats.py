"""Image File sources read what Blender reads (issue 10, item 4): the formats Pillow reads through
the engine (exact 8/16-bit values), OpenEXR and Radiance HDR through Blender, with a float plate's
scene-linear values put through the sRGB curve the model expects. Files written by Blender itself."""

from tests.blender.test_blender_extension import MAKE_IMAGE

CODE = """
from bl_ext.user_default.fathom.bridge.capture import picture
h, w = 32, 48
linear = np.zeros((h, w, 4), np.float32)
linear[..., 0] = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :]
linear[..., 1] = 0.18
linear[..., 2] = np.linspace(0.0, 0.5, h, dtype=np.float32)[:, None]
linear[..., 3] = 1.0
expected = picture.linear_to_srgb(linear[::-1, :, :3])  # what the model must see, top row first
got = {}
for fmt, ext, depth in (("OPEN_EXR", "exr", "32"), ("HDR", "hdr", ""), ("PNG", "png", "16"),
                        ("TIFF", "tif", "16"), ("PNG", "png8.png", "8"), ("JPEG", "jpg", "8"), ("WEBP", "webp", "8")):
    img = bpy.data.images.new("plate_" + ext, w, h, float_buffer=True)
    img.pixels.foreach_set(linear.ravel())
    path = tmp + "/plate." + ext
    img.filepath_raw = path
    img.file_format = fmt
    settings = bpy.context.scene.render.image_settings
    settings.file_format = fmt
    if depth:
        settings.color_depth = depth
    img.save_render(path)
    try:
        rgb = picture.from_file(path).rgb  # the file's own precision
        scale = {np.dtype("uint8"): 255.0, np.dtype("uint16"): 65535.0}.get(rgb.dtype, 1.0)
        rgb = np.asarray(rgb, np.float32) / scale
        loaded = bpy.data.images.load(path, check_existing=False)  # Blender's own reading of the file
        blender_rgb = picture.image_pixels(loaded)
        got[ext] = {"shape": list(rgb.shape), "err": float(np.abs(rgb - expected).max()),
                    "vs_blender": float(np.abs(rgb - blender_rgb).max())}
    except Exception as exc:
        got[ext] = {"error": f"{type(exc).__name__}: {exc}"}
emit(got)
"""


def test_image_file_formats_read_as_blender_reads_them(blender):
    got = blender(MAKE_IMAGE, CODE)
    for ext in ("exr", "hdr", "png", "tif", "png8.png", "jpg", "webp"):
        assert "error" not in got[ext], (ext, got[ext])
        assert got[ext]["shape"] == [32, 48, 3], (ext, got[ext])
    # Float plates: their linear values through the sRGB curve (HDR keeps 8-bit mantissas).
    assert got["exr"]["err"] < 1e-5 and got["hdr"]["err"] < 0.02, got
    # The others (written through the scene's view transform) read as Blender reads them.
    assert got["png"]["vs_blender"] < 1e-3 and got["tif"]["vs_blender"] < 0.005, got  # 16 bits (TIFF: within 1/255)
    assert got["png8.png"]["vs_blender"] < 1e-6, got
    assert got["jpg"]["vs_blender"] < 0.02 and got["webp"]["vs_blender"] < 0.02, got  # decoders may round apart
