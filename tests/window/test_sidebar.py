"""The artist's path in a real Blender window: the Depth tab clicked, Generate Depth pressed, the
progress bar, Esc, and the result in the file, the image and the compositor; screenshots kept."""

import os

import pytest

from tests.window.conftest import record


@pytest.mark.slow
def test_generate_from_the_sidebar_then_cancel_with_esc(window, scene_blend, catalogs, blender_exe):
    got = window("generate_from_sidebar", scene_blend, catalog=catalogs["standin"], source="IMAGE")
    record("sidebar-generate", {k: got[k] for k in ("blender", "tab_clicks", "progress", "result", "cancel")})
    assert got["blender"] == blender_exe["version"] and got["python"].startswith(blender_exe["python"])
    assert got["tab_clicks"]["Depth"], got  # the tab was found by clicking it
    assert got["poll_before"] and got["invoke"] == ["RUNNING_MODAL"], got
    # The progress bar ran: several samples while running, with words and a fraction that grew.
    assert got["running_samples"] >= 5, got
    progress = [p for p in got["progress"] if p is not None]
    assert len(progress) >= 2 and all(text for _, text in progress), got
    assert [f for f, _ in progress] == sorted(f for f, _ in progress), got
    (result,) = got["result"]
    assert result["name"] == "Photo_depth_001.exr" and result["colorspace"] == "Non-Color", result
    assert result["file_exists"] and result["file"] == str(scene_blend.parent / "generated" / result["name"])
    assert result["size"] == [640, 360] and result["nodes"], result
    assert got["generated"] == ["Photo_depth_001.exr"]
    # Visible where the user looks: the Image Editor that showed the photo, the panel's thumbnail.
    shown = got["shown"]
    assert shown["editor"] == shown["panel"] == "Photo_depth_001.exr" and shown["thumbnail"], got
    assert shown["thumbnail_size"] == [214, 120], got  # every 3rd pixel of 640x360: at most 256 wide
    # Esc stopped the second run: nothing new kept, Generate available again.
    cancel = got["cancel"]
    assert cancel["new_images"] == [] and cancel["generated"] == ["Photo_depth_001.exr"], cancel
    assert cancel["poll_after"], cancel
    # Ctrl+Z: image, node and thumbnail gone together (one undo step); Shift+Ctrl+Z: all back.
    undo = got["undo"]
    assert (
        undo["before"]
        == {"images": ["Photo_depth_001.exr"], "nodes": undo["before"]["nodes"], "panel": "Photo_depth_001.exr"}
        and undo["before"]["nodes"]
    ), undo
    assert undo["undone"] == {"images": [], "nodes": [], "panel": None}, undo
    assert undo["redone"] == undo["before"], undo
    names = [os.path.basename(p) for p in got["screenshots"]]
    assert [n.split("-", 1)[1] for n in names] == [
        "before.png",
        "during.png",
        "after.png",
        "cancelling.png",
        "cancelled.png",
    ], names
    assert all(os.path.getsize(p) > 10_000 for p in got["screenshots"])
