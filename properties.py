"""Per-scene depth settings (``scene.fathom``), shown in the sidebar and used by the operators."""

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from .engine import catalog
from .engine.errors import FathomError
from .engine.providers import thread_count
from .engine.settings import (
    DEFAULT_MODEL,
    DEFAULT_RESOLUTION,
    MAX_RESOLUTION,
    MIN_RESOLUTION,
    SETTING_NAMES,
    DepthSettings,
)

SOURCES = (
    ("IMAGE", "Image", "An image datablock: the Image Editor's image or one you pick"),
    ("FILE", "Image File", "An image file on disk"),
    ("RENDER", "Render", "Render the active camera at the scene's resolution (no compositing)"),
    ("COMPOSITOR", "Compositor", "Render the scene through its compositor and use the composite"),
)
NORMALIZATIONS = (
    ("standard", "Standard", "Min-max to 0..1 with near = bright"),
    ("v2-style", "V2-Style", "Depth Anything V2's own scaling of its disparity"),
    ("raw", "Raw", "The network's relative disparity, unscaled"),
)
TILINGS = (
    (
        "detail",
        "Sharp Detail (Tiled)",
        "Past what one network pass holds: the whole picture's shape from one pass, fine detail from tiles (slower)",
    ),
    (
        "whole",
        "Whole Picture Only",
        "Past what one network pass holds: one pass at the largest resolution that fits (faster, softer)",
    ),
)
QUALITIES = (
    ("best", "Best", "The exact network (fp32)"),
    ("standard", "Standard", "int8 weights on the CPU: faster, within about 1 % of Best"),
    ("draft", "Draft", "int8 weights and at most 364 pixels a side: fastest, for previews"),
)
OUTPUT_FORMATS = (
    ("exr32", "EXR 32-bit", "Float EXR, exact: best for displacement"),
    ("exr16", "EXR 16-bit", "Half-float EXR, half the size"),
    ("png16", "PNG 16-bit", "16-bit grey PNG"),
    ("png8", "PNG 8-bit", "8-bit grey PNG: steps show on displaced surfaces"),
)

_model_items = []  # Blender needs the enum strings kept alive while they are shown


def model_items(self, context):
    try:
        models = catalog.catalog()
    except FathomError as exc:  # a broken FATHOM_CATALOG file: keep the built-ins usable
        print(f"Fathom: {exc}")
        models = catalog.builtin_models()
    _model_items[:] = [(m.id, m.name, catalog.license_notice(m)) for m in models.values()]
    return _model_items


class FathomSceneSettings(bpy.types.PropertyGroup):
    source: EnumProperty(name="Source", items=SOURCES, default="IMAGE")
    image: PointerProperty(
        name="Image", type=bpy.types.Image, description="The image to estimate depth from (default: the Image Editor's)"
    )
    filepath: StringProperty(
        name="File", subtype="FILE_PATH", default="", description="Image file to estimate depth from"
    )
    model: EnumProperty(name="Model", items=model_items, description="Depth model")
    resolution: IntProperty(
        name="Resolution",
        min=MIN_RESOLUTION,
        max=MAX_RESOLUTION,
        default=DEFAULT_RESOLUTION,
        description="Short side the network sees; 518 is the model's native size, more "
        "gives finer detail and takes longer",
    )
    invert: BoolProperty(name="Invert", default=False, description="Far = bright instead of near = bright")
    post_resize: BoolProperty(
        name="Source Size", default=True, description="Bring the depth map back to the source's size"
    )
    normalization: EnumProperty(name="Normalization", items=NORMALIZATIONS, default="standard")
    quality: EnumProperty(name="Quality", items=QUALITIES, default="best", description="Speed against exactness")
    output_format: EnumProperty(name="Format", items=OUTPUT_FORMATS, default="exr32")
    tiling: EnumProperty(name="Detail", items=TILINGS, default="detail")
    use_frames: BoolProperty(
        name="Frames",
        default=False,
        description="Depth for a range of frames (a shot): the render or Scene Z at each frame, an image "
        "sequence or a movie; one numbered file per frame, shown in the compositor as an image sequence",
    )
    frames: StringProperty(
        name="Frames",
        default="",
        description="Which frames: START-END, START-END:STEP or a list (1-10,20); empty: the scene's range, "
        "or every frame of the image sequence or movie",
    )
    stabilize: BoolProperty(
        name="Stabilize",
        default=True,
        description="Align each frame's depth to the frames before it, so it does not flicker (AI backends)",
    )
    smoothing: FloatProperty(
        name="Smoothing",
        min=0.0,
        max=0.9,
        default=0.0,
        description="Also even out the depth of still areas over time (0: off; 0.5: strong)",
    )
    result: PointerProperty(
        name="Last Result", type=bpy.types.Image, description="The newest depth map made in this scene"
    )

    def depth_settings(self, threads: int = 0, device: str = "AUTO") -> DepthSettings:
        values = {name: getattr(self, name) for name in SETTING_NAMES}  # the properties are named as the settings
        values["model"] = values["model"] or DEFAULT_MODEL
        # An interactive Blender keeps a core for its interface; a background one uses them all.
        threads = thread_count(threads, interactive=not bpy.app.background)
        return DepthSettings(**values, threads=threads, device=device.lower()).validated()


class PicturePoint:
    """Mixin: a point of the picture, 0..1 (operators._pick sets it from a click). Blender registers a mixin's
    properties on each operator and property group that inherits it."""

    x: FloatProperty(name="X", default=0.5, min=0.0, max=1.0, description="From the picture's left edge, 0..1")
    y: FloatProperty(name="Y", default=0.5, min=0.0, max=1.0, description="From the picture's bottom edge, 0..1")


class KnownDistance(PicturePoint):
    """Mixin: a point of the picture with its distance, for Metric Depth."""

    distance: FloatProperty(
        name="Distance", default=1.0, min=0.0, unit="LENGTH", description="How far this point is from the camera"
    )


class FathomMetricPoint(KnownDistance, bpy.types.PropertyGroup):
    """A point of the picture with its known distance, for Metric Depth."""


class FathomSetupSettings(bpy.types.PropertyGroup):
    """Which depth image and picture the Setups panel's workflows use (``scene.fathom_setups``)."""

    depth: PointerProperty(
        name="Depth", type=bpy.types.Image, description="Depth image the setups use (default: the newest Fathom result)"
    )
    picture: PointerProperty(
        name="Picture",
        type=bpy.types.Image,
        description="Picture the depth belongs to (default: the depth map's source)",
    )
    metric_points: CollectionProperty(
        type=FathomMetricPoint,
        name="Known Distances",
        description="Points of the picture with their distances, for Metric Depth",
    )


classes = (FathomSceneSettings, FathomMetricPoint, FathomSetupSettings)


def register():
    bpy.types.Scene.fathom = PointerProperty(type=FathomSceneSettings)
    bpy.types.Scene.fathom_setups = PointerProperty(type=FathomSetupSettings)


def unregister():
    del bpy.types.Scene.fathom_setups
    del bpy.types.Scene.fathom
