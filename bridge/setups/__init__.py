"""One-click depth workflows built from a depth image: native nodes and objects the user can tweak.

    displacement  a camera-filling plane (or a chosen object) displaced by the depth, textured with the picture
    dof           depth of field in the compositor (Defocus fed with a blur radius made from the depth)
    fog           atmosphere in the compositor (Map Range on the depth, Mix with a colour)
    stereo        a left/right pair written under //generated/ (engine.stereo)
    export        normal map from the depth (engine.normals) and the displaced mesh as OBJ/PLY
    metric        a network's relative map fitted to known distances (engine.metric): scene units

Shared by them: units (what a depth image's values mean, its distances), pictures (the picture a
setup shows: the render itself for render depth) and colour (that picture as scene light, so it renders
back as itself under the scene's view transform).

Everything a setup creates carries the tag ``fathom_setup`` (common.TAG), so running it again
updates what is there and Remove deletes only Fathom's own nodes and objects.
"""
