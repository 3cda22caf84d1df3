"""Sources and backends: the names scripts and the command line use -> the ids of the UI's enums
(properties.SOURCES, preferences.BACKENDS)."""

SOURCES = {"image": "IMAGE", "file": "FILE", "render": "RENDER", "compositor": "COMPOSITOR"}
BACKENDS = {"local": "LOCAL", "server": "SERVER", "scene-z": "SCENE_Z"}
RENDERED = ("RENDER", "COMPOSITOR")  # the sources that render the scene
