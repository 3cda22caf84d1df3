"""How long Blender's main thread stops answering while a generation runs from the sidebar: the
longest gap between the ticks of a 20 ms timer, against the same window idle with the same redraw
rate (software OpenGL makes a full redraw cost ~100-170 ms on two cores). Measured with the full-size
stand-in model, for an image source and for the render (rendered by a child Blender, started through
``bpy.app.binary_path``). The figures go to out/test-artifacts/main-thread-*.json.

The 250 ms bound is the goal of issue 10's "Never freeze Blender"; until the worker process lands
it is known not to hold (model loading holds the GIL), hence xfail, non-strict, with the figure.
"""

import pytest

from tests.window.conftest import record

BOUND_MS = 250


@pytest.mark.slow
@pytest.mark.parametrize("source", ["IMAGE", "RENDER"])
def test_main_thread_while_generating(window, scene_blend, catalogs, source):
    got = window("main_thread", scene_blend, catalog=catalogs["standin"], source=source, idle_s=5.0)
    idle, during = got["idle"], got["during"]
    record(
        f"main-thread-{source.lower()}",
        {
            "source": source,
            "idle": idle,
            "during": during,
            "invoke_ms": got["invoke_ms"],
            "done_at_s": got["done_at_s"],
            "children": got["children"],
            "blender": got["blender"],
        },
    )
    assert got["invoke"] == ["RUNNING_MODAL"], got
    (result,) = got["result"]
    assert result["file_exists"] and result["colorspace"] == "Non-Color" and result["nodes"], result
    assert idle["ticks"] >= 2 and during["ticks"] >= 2, got  # the timer ran (how often depends on the load)
    if source == "RENDER":  # rendered by a child Blender, this very executable, in the background
        children = got["children"]
        assert any(c[0] == got["binary_path"] and {"-b", "--background"} & set(c) for c in children), children
    if during["longest_gap_ms"] > BOUND_MS:
        pytest.xfail(
            f"the main thread stopped for {during['longest_gap_ms']:.0f} ms while generating from "
            f"{source.lower()} (idle with the same redraws: {idle['longest_gap_ms']:.0f} ms; "
            f"bound {BOUND_MS} ms): issue 10, never freeze Blender"
        )
