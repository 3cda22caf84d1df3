"""Depth workflows in one click: displacement, depth of field, pick focus, fog, stereo, normal map,
mesh export and removal. Each operator is a thin shell over a plain function of bridge.setups."""

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, FloatVectorProperty, IntProperty

from ..bridge.setups import common, displacement, dof, export, fog, pictures, stereo
from ._operator import name_property, refuse, reported
from ._pick import PickInImage

NO_DEPTH = "Generate a depth map first, or pick a depth image under Depth > Setups"

PARALLAX_MOVES = (
    ("NONE", "None", "No camera move"),
    ("DOLLY", "Dolly", "A copy of the camera moves towards the plane"),
    ("ORBIT", "Orbit", "A copy of the camera swings around the plane's centre"),
)
STEREO_MODES = (
    ("AUTO", "Auto", "A camera rig when the depth has distances (Scene Z, metric depth), else divergence"),
    (
        "RIG",
        "Camera Rig",
        "Interaxial and convergence distances in scene units with the camera's focal length: "
        "the pair Blender's stereoscopy renders",
    ),
    ("DIVERGENCE", "Divergence", "For relative depth: the largest shift between the eyes, in percent of the width"),
)
EYES = (
    ("LEFT", "Left Eye", "The picture is the left eye; the right eye is made"),
    ("RIGHT", "Right Eye", "The picture is the right eye; the left eye is made"),
    ("CENTER", "Centre", "The picture sits between the eyes; both are made, each with half the shift"),
)
CONVERGENCE_MODES = (
    ("OFFAXIS", "Off-Axis", "Shifted sensors: what is at the convergence distance sits on the screen"),
    ("PARALLEL", "Parallel", "No convergence: everything is in front of the screen"),
)
LAYOUTS = (
    ("SIDE_BY_SIDE", "Side by Side", "Left eye on the left"),
    ("TOP_BOTTOM", "Top-Bottom", "Left eye on top"),
    ("ANAGLYPH", "Anaglyph", "Red-cyan glasses"),
)
REMOVABLE = (
    ("DISPLACEMENT", "Displacement", ""),
    ("DOF", "Depth of Field", ""),
    ("FOG", "Fog", ""),
    ("ALL", "All", "Every Fathom setup in this scene"),
)


def panel_settings(context):
    return getattr(context.scene, "fathom_setups", None)


def _image(context, name, panel_field, default):
    """The named image, else the one picked in the Setups panel (``panel_field``), else ``default()``."""
    if name:
        return bpy.data.images.get(name)
    picked = getattr(panel_settings(context), panel_field, None)
    return picked if picked is not None else default()


def depth_image(context, name=""):
    """The named image, else the panel's depth image, else the Image Editor's or newest Fathom result."""
    return _image(context, name, "depth", lambda: common.default_depth_image(context))


def any_data_image():
    """Whether some image is Non-Color data, so that a script may name it as the depth."""
    return any(i.colorspace_settings.is_data for i in bpy.data.images)


def picture_image(context, depth, name=""):
    """The named image, else the panel's picture, else the depth map's source."""
    return _image(context, name, "picture", lambda: common.source_picture(depth))


class _Setup:
    """Shared by the setup operators: which depth image and picture, undo, errors as reports."""

    bl_options = {"REGISTER", "UNDO"}

    depth: name_property("Depth Image", "Name of the depth image (default: the panel's, or the newest Fathom result)")
    picture: name_property("Picture", "Name of the picture (default: the panel's, or the depth map's source)")
    needs_picture = False

    @classmethod
    def poll(cls, context):
        if context.scene is None:
            return False
        depth = depth_image(context)
        if depth is None and not any_data_image():
            return refuse(cls, NO_DEPTH)  # scripts may still name any Non-Color image
        if (
            cls.needs_picture
            and depth is not None
            and picture_image(context, depth) is None
            and pictures.depth_source(depth).get("kind") not in pictures.RENDERED_SOURCES
            and len(bpy.data.images) < 2
        ):
            return refuse(cls, "Pick the picture the depth map belongs to under Depth > Setups")
        return True

    def images(self, context):
        depth = depth_image(context, self.depth)
        if depth is None:
            raise common.SetupError(f"There is no image named {self.depth!r}." if self.depth else NO_DEPTH + ".")
        picture = picture_image(context, depth, self.picture)
        if self.picture and picture is None:
            raise common.SetupError(f"There is no image named {self.picture!r}.")
        return depth, picture

    def execute(self, context):
        return reported(self, lambda: self.build(context, *self.images(context)))


class _CompositorSetup(_Setup):
    """A setup in the compositor: on what feeds its output, or on the picture when asked (``use_picture``)."""

    def chosen_picture(self, picture):
        return picture if (self.use_picture or self.picture) else None


class FATHOM_OT_setup_displacement(_Setup, bpy.types.Operator):
    """A plane filling the camera's view, displaced by the depth and textured with the picture"""

    bl_idname = "fathom.setup_displacement"
    bl_label = "Displacement"

    use_selected: BoolProperty(
        name="Selected Object",
        default=False,
        description="Displace the active mesh object (by its UV map) instead of a new plane",
    )
    distance: FloatProperty(
        name="Distance",
        default=10.0,
        min=0.001,
        unit="LENGTH",
        description="How far in front of the camera the plane lies",
    )
    strength: FloatProperty(
        name="Strength",
        default=5.0,
        unit="LENGTH",
        description="How far the nearest (white) points move towards the camera",
    )
    midlevel: FloatProperty(
        name="Midlevel", default=0.0, min=0.0, max=1.0, description="Depth value that stays in place"
    )
    resolution: IntProperty(
        name="Resolution", default=256, min=2, max=4096, description="Vertices along the plane's long side"
    )
    subdivisions: IntProperty(
        name="Subdivisions", default=1, min=0, max=6, description="Levels of the Subdivision modifier"
    )
    smooth: IntProperty(
        name="Soften Edges",
        default=0,
        min=0,
        max=100,
        description="Blur iterations of the depth over the mesh (softens depth edges)",
    )
    stretch: FloatProperty(
        name="Cut Stretched",
        default=0.0,
        min=0.0,
        max=1.0,
        description="Delete faces whose corners' depths spread more than this (0: keep all)",
    )
    parallax: EnumProperty(name="Parallax Move", default="NONE", items=PARALLAX_MOVES)
    amplitude: FloatProperty(
        name="Amplitude",
        default=0.1,
        min=0.0,
        max=1.0,
        description="Dolly: part of the distance; orbit: part of 90 degrees each way",
    )
    real_distances: BoolProperty(
        name="Real Distances",
        default=True,
        description="Put each point at its own distance when the depth map has distances (Scene Z, metric "
        "depth); off, or for a relative map: move points by Strength",
    )

    def build(self, context, depth, picture):
        target = None
        if self.use_selected:
            target = context.active_object
            if target is None:
                raise common.SetupError("Select the mesh object to displace.")
        # The other properties are named as the setup's keywords.
        options = self.as_keywords(ignore=("depth", "picture", "use_selected"))
        obj = displacement.setup(context.scene, depth, picture, target=target, **options)
        values = obj[common.PARAMS_KEY]
        how = "at real distances" if values["metric"] else "by relative depth"
        return f"Displaced {obj.name} {how}; picture: {values['colour'] or 'none'}"


class FATHOM_OT_setup_dof(_CompositorSetup, bpy.types.Operator):
    """Depth of field in the compositor: Defocus driven by the depth image"""

    bl_idname = "fathom.setup_dof"
    bl_label = "Depth of Field"

    use_picture: BoolProperty(
        name="Use Picture", default=False, description="Blur the picture instead of what feeds the compositor's output"
    )
    f_stop: FloatProperty(name="F-Stop", default=2.8, min=0.1, max=128.0)
    blur_max: FloatProperty(name="Max Blur", default=16.0, min=1.0, max=512.0, description="Largest radius, pixels")
    focus_distance: FloatProperty(
        name="Focus Distance",
        default=0.0,
        min=0.0,
        unit="LENGTH",
        description="0: the distance at the picture's centre",
    )
    real_distances: BoolProperty(
        name="Real Distances",
        default=True,
        description="Read the depth map in its own distances when it has them (Scene Z, metric depth); "
        "off, or for a relative map: between Near and Far",
    )
    near: FloatProperty(
        name="Near", default=1.0, min=0.001, unit="LENGTH", description="Relative map: distance of depth 1 (white)"
    )
    far: FloatProperty(
        name="Far",
        default=0.0,
        min=0.0,
        unit="LENGTH",
        description="Relative map: distance of depth 0 (black); 0: infinitely far",
    )
    focal_length: FloatProperty(name="Focal Length", default=0.0, min=0.0, description="mm; 0: the scene camera's")
    sensor_width: FloatProperty(name="Sensor Width", default=0.0, min=0.0, description="mm; 0: the scene camera's")

    def build(self, context, depth, picture):
        options = self.as_keywords(ignore=("depth", "picture", "use_picture", "far"))
        node = dof.setup(context.scene, depth, self.chosen_picture(picture), far=self.far or None, **options)
        return f"Depth of field from {depth.name}, {dof.describe_focus(node)}"


class FATHOM_OT_setup_fog(_CompositorSetup, bpy.types.Operator):
    """Fog in the compositor: more of a colour the farther the depth"""

    bl_idname = "fathom.setup_fog"
    bl_label = "Fog"

    use_picture: BoolProperty(
        name="Use Picture", default=False, description="Fog the picture instead of what feeds the compositor's output"
    )
    color: FloatVectorProperty(name="Color", subtype="COLOR", size=3, min=0.0, max=1.0, default=(0.75, 0.8, 0.85))
    near: FloatProperty(
        name="Near",
        default=-1.0,
        min=-1.0,
        description="Where the fog starts: a distance for a map in real distances, else a depth value (0..1); "
        "-1: the nearest surface (depth 1)",
    )
    far: FloatProperty(
        name="Far",
        default=-1.0,
        min=-1.0,
        description="Where the fog is full: a distance for a map in real distances, else a depth value (0..1); "
        "-1: the farthest surface (depth 0)",
    )
    density: FloatProperty(name="Density", default=1.0, min=0.0, max=1.0, subtype="FACTOR")

    def build(self, context, depth, picture):
        fog.setup(
            context.scene,
            depth,
            self.chosen_picture(picture),
            color=tuple(self.color),
            near=None if self.near < 0 else self.near,
            far=None if self.far < 0 else self.far,
            density=self.density,
        )
        return f"Fog from {depth.name}"


class FATHOM_OT_setup_stereo(_Setup, bpy.types.Operator):
    """A stereo pair from the picture and its depth, as a stereo camera makes it, written under //generated/"""

    bl_idname = "fathom.setup_stereo"
    bl_label = "Stereo Pair"
    needs_picture = True

    mode: EnumProperty(name="Mode", default="AUTO", items=STEREO_MODES)
    eye: EnumProperty(name="Picture Is", default="LEFT", items=EYES)
    use_camera: BoolProperty(
        name="From Camera",
        default=True,
        description="Take interaxial, convergence and which eye the picture is from the "
        "camera's Stereoscopy settings (Camera properties > Stereoscopy)",
    )
    interaxial: FloatProperty(
        name="Interaxial",
        default=0.065,
        min=1e-6,
        soft_max=1.0,
        unit="LENGTH",
        precision=3,
        description="Distance between the two cameras",
    )
    convergence_mode: EnumProperty(name="Convergence", default="OFFAXIS", items=CONVERGENCE_MODES)
    convergence: FloatProperty(
        name="Convergence Distance",
        default=1.95,
        min=1e-4,
        unit="LENGTH",
        description="What is this far away sits on the screen; nearer comes out of it",
    )
    divergence: FloatProperty(
        name="Divergence",
        default=2.5,
        min=0.0,
        max=30.0,
        soft_max=10.0,
        subtype="PERCENTAGE",
        description="Largest shift between the eyes, in percent of the width: the nearest "
        "point gets all of it, the farthest none (it sits on the screen)",
    )
    layout: EnumProperty(name="Layout", default="SIDE_BY_SIDE", items=LAYOUTS)
    fill: BoolProperty(
        name="Fill Gaps",
        default=True,
        description="Fill what the picture never saw (behind near objects, the border strip) from the "
        "background side, with its texture",
    )

    def draw(self, context):
        col = self.layout.column()
        col.use_property_split = True
        col.use_property_decorate = False
        col.prop(self, "mode")
        col.prop(self, "use_camera")
        sub = col.column()
        sub.active = not self.use_camera
        sub.prop(self, "eye")
        if self.mode != "DIVERGENCE":
            sub.prop(self, "interaxial")
            sub.prop(self, "convergence_mode")
            row = sub.row()
            row.active = self.convergence_mode == "OFFAXIS"
            row.prop(self, "convergence")
        if self.mode != "RIG":
            col.prop(self, "divergence")
            col.label(text="Relative depth: the farthest point sits on the screen", icon="INFO")
        col.prop(self, "layout")
        col.prop(self, "fill")

    def build(self, context, depth, picture):
        picture = picture or pictures.picture_for(context.scene, depth)  # render depth: the render
        if picture is None:
            raise common.SetupError("Pick the picture the depth map belongs to under Depth > Setups.")
        eye = None if self.use_camera else self.eye  # the camera's pivot
        options = self.as_keywords(ignore=("depth", "picture", "eye"))
        _, report, warnings = stereo.setup(picture, depth, eye=eye, scene=context.scene, **options)
        for warning in warnings:
            self.report({"WARNING"}, warning)
        return report


class FATHOM_OT_normal_map(_Setup, bpy.types.Operator):
    """A normal map from the depth, for relighting, written under //generated/ and loaded (Non-Color)"""

    bl_idname = "fathom.normal_map"
    bl_label = "Normal Map"

    strength: FloatProperty(name="Strength", default=1.0, min=0.0, max=100.0)

    def build(self, context, depth, picture):
        image = export.normals(depth, strength=self.strength)
        return f"Normal map {image.filepath}"


class FATHOM_OT_export_mesh(bpy.types.Operator):
    """Export the displaced plane (modifiers applied) as OBJ or PLY under //generated/"""

    bl_idname = "fathom.export_mesh"
    bl_label = "Export Mesh"
    bl_options = {"REGISTER"}

    format: EnumProperty(name="Format", items=(("OBJ", "OBJ", "Wavefront OBJ"), ("PLY", "PLY", "Stanford PLY")))
    filepath: name_property("File", "Write here instead of //generated/ (never overwrites)", subtype="FILE_PATH")
    object_name: name_property("Object", "Mesh object to export (default: the displacement plane)")

    @classmethod
    def poll(cls, context):
        if displacement.find_object() is None:
            return refuse(cls, "Build the Displacement setup first")
        return True

    def execute(self, context):
        return reported(self, lambda: f"Exported {self.export()}")

    def export(self):
        return export.export_mesh(self.object_name or None, self.format, path=self.filepath or None)


REMOVERS = {"DISPLACEMENT": displacement.remove, "DOF": dof.remove, "FOG": fog.remove}


class FATHOM_OT_remove_setup(bpy.types.Operator):
    """Delete what a Fathom setup made (only its tagged nodes and objects; yours stay)"""

    bl_idname = "fathom.remove_setup"
    bl_label = "Remove Setup"
    bl_options = {"REGISTER", "UNDO"}

    kind: EnumProperty(name="Setup", items=REMOVABLE)

    def execute(self, context):
        kinds = REMOVERS if self.kind == "ALL" else [self.kind]
        count = sum(REMOVERS[k](context.scene) for k in kinds)
        self.report({"INFO"}, f"Removed {count} Fathom item(s)" if count else "No Fathom setup to remove")
        return {"FINISHED"}


class FATHOM_OT_pick_focus(PickInImage, bpy.types.Operator):
    """Focus the depth of field on a point of the picture (click it in the Image Editor)"""

    bl_idname = "fathom.pick_focus"
    pick_prompt = "Click the point to focus on; Esc or right-click cancels"
    bl_label = "Pick Focus"
    bl_options = {"REGISTER", "UNDO"}

    depth: name_property("Depth Image", "Depth image to read when the scene has no depth of field setup")
    set_camera: BoolProperty(
        name="Camera Focus", default=False, description="Also set the scene camera's depth of field focus distance"
    )

    @classmethod
    def poll(cls, context):
        if context.scene is None:
            return False
        if dof.params(context.scene) is None and depth_image(context) is None and not any_data_image():
            return refuse(cls, "Add a Depth of Field setup (or generate a depth map) first")
        return True

    def execute(self, context):
        return reported(self, lambda: self.focus(context))

    def focus(self, context):
        depth = None
        if dof.params(context.scene) is None:
            image = depth_image(context, self.depth)
            depth = image.name if image is not None else (self.depth or None)
        focus = dof.pick_focus(context.scene, self.x, self.y, depth=depth, set_camera=self.set_camera)
        node = dof.defocus_node(context.scene)
        return f"Depth of field {dof.describe_focus(node)}" if node is not None else f"Camera focus at {focus:.4g}"


classes = (
    FATHOM_OT_setup_displacement,
    FATHOM_OT_setup_dof,
    FATHOM_OT_pick_focus,
    FATHOM_OT_setup_fog,
    FATHOM_OT_setup_stereo,
    FATHOM_OT_normal_map,
    FATHOM_OT_export_mesh,
    FATHOM_OT_remove_setup,
)
