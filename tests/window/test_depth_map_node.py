"""The Depth Map node in a real Blender window: added, wired after a Blur, generated from the node's box
in the Compositor's Depth tab (the capture in a child Blender, the UI free), its result and state."""

import os
import shutil

import pytest

from tests.window.conftest import ARTIFACTS, record


@pytest.mark.slow
def test_generate_from_a_depth_map_node_in_the_compositor(window, scene_blend, catalogs):
    got = window("depth_map_node", scene_blend, catalog=catalogs["tiny"])
    record("depth-map-node", {k: got.get(k) for k in ("blender", "add", "invoke", "after", "state_stale")})
    assert got["add"] == ["FINISHED"] and got["state_before"] == "missing", got
    assert got["invoke"] == ["RUNNING_MODAL"] and got["running_samples"] > 0, got
    after = got["after"]
    assert after["state"] == "current" and after["image"] == "//generated/Depth_Map_depth_001.exr", after
    assert after["files"] == ["Depth_Map_depth_001.exr"] and after["size"] == [320, 180], after
    assert after["record"]["model"] == "da2-small" and after["record"]["size"] == [320, 180], after
    # The user's wiring as it was built: the capture re-wired a copy, not this tree.
    assert after["links"] == [["Blur", "Depth Map"], ["Depth Map", "Composite"], ["Render Layers", "Blur"]], after
    assert got["state_stale"] == "stale"
    shots = {os.path.basename(p).split("-", 1)[1]: p for p in got["screenshots"]}
    assert set(shots) >= {"node-before.png", "node-after.png", "node-stale.png"}, shots
    assert all(os.path.getsize(p) > 10_000 for p in shots.values())
    # The README's picture of the node comes from this run (scaled down by the Makefile target).
    shutil.copyfile(shots["node-after.png"], ARTIFACTS / "depth-map-node.png")
