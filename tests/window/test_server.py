"""The Server backend in a real Blender window against a real depth server on 127.0.0.1 (issue 17):
the pending-results popup never freezes Blender, and what the artist reads fits where it is shown.

The server runs beside the Debian 13 root (which cannot run .venv): `make test-window` starts it
with scripts/with_depth_server.py, which names it in FATHOM_TEST_SERVER_URL and gives two keys.
It has no worker, so a job it accepts stays queued, as on a busy or restarted server.
"""

import os

import pytest

from tests.window.conftest import blender_env, checked, record
from tests.window.test_main_thread import BOUND_MS

SERVER = os.environ.get("FATHOM_TEST_SERVER_URL")

# A job accepted by the server and recorded in the file, as a lost connection or a crash leaves it.
SUBMIT = """
import bpy, importlib, sys
name = "bl_ext.user_default.fathom"
prefs = bpy.context.preferences.addons[name].preferences
prefs.backend, prefs.server_url, prefs.api_key = "SERVER", sys.argv[-2], sys.argv[-1]
scene = bpy.context.scene
scene.fathom.source, scene.fathom.image = "IMAGE", bpy.data.images["Photo"]
backends = importlib.import_module(name + ".bridge.generation.backends")
job = backends.prepare(bpy.context, allow_online=True)
job.follow_seconds = 0.5
try:
    job.run()
except Exception as exc:
    print("@@", type(exc).__name__, exc)
importlib.import_module(name + ".bridge.generation.worker").drain()
assert len(importlib.import_module(name + ".bridge.remote.pending").entries()) == 1
bpy.ops.wm.save_mainfile()
"""


@pytest.fixture
def depth_server():
    if not SERVER:
        pytest.fail("FATHOM_TEST_SERVER_URL is not set: run the tier with `make test-window` (it starts the server)")
    return {"server": SERVER, "key": os.environ["FATHOM_TEST_SERVER_KEY"]}


@pytest.mark.slow
def test_pending_popup_fetch_never_blocks_the_main_thread(
    window, scene_blend, catalogs, blender_home, display, depth_server, tmp_path
):
    script = tmp_path / "submit.py"
    script.write_text(SUBMIT)
    out = checked(
        ["blender", "-b", scene_blend, "--python", script, "--", depth_server["server"], depth_server["key"]],
        env=blender_env(blender_home, catalogs["tiny"]),
    )
    assert "@@ StillPendingError" in out.stdout, out.stdout[-3000:]
    # The popup opens where the pointer is: in the middle of the window, away from the sidebar.
    checked(["xdotool", "mousemove", "800", "420"], env={**os.environ, "DISPLAY": display})
    got = window("pending_popup_fetch", scene_blend, catalog=catalogs["tiny"], idle_s=5.0, fetch_s=6.0, **depth_server)
    idle, during = got["idle"], got["during"]
    record("main-thread-pending-popup", {k: got[k] for k in ("idle", "during", "seconds_to_worker", "progress")})
    assert got["pending_before"] == 1, got
    # Picked in the popup, the fetch runs on the worker: the progress bar and Cancel are there.
    assert got["on_worker"], got
    assert any(p and "Queued on the depth server" in p[1] for p in got["progress"]), got["progress"]
    limit = max(BOUND_MS, 1.5 * idle["longest_gap_ms"])
    assert during["longest_gap_ms"] <= limit, (during, idle)
    assert during["seconds"] >= 5.0 and got["fetching"], during  # it did follow the queued job that long
    # Esc stopped following: the job stays pending, and the status bar's report (the newest line of
    # the Info log) is one short sentence leading with the outcome; the details precede it.
    assert got["pending_after"] == 1, got
    *earlier, newest = got["info_log"]
    assert newest.startswith("Not fetched yet: the depth map is still queued on the server after "), got["info_log"]
    assert newest.count(". ") == 0 and len(newest) <= 90, newest
    assert "Fetch Pending Results again" in earlier[-1] and "no tokens are lost" in earlier[-1], earlier


@pytest.mark.slow
def test_sidebar_note_wraps_at_the_default_width(window, scene_blend, catalogs, depth_server):
    empty = {**depth_server, "key": os.environ["FATHOM_TEST_SERVER_KEY_EMPTY"]}
    got = window("sidebar_server_note", scene_blend, catalog=catalogs["tiny"], **empty)
    record("sidebar-server-note", {k: got[k] for k in ("region_width", "note", "room_px", "note_px", "lines")})
    assert got["button"] == "Get tokens · 1 more", got
    assert got["note"] == "This depth map costs 1 token; your balance is 0", got
    assert got["note_px"] > got["room_px"], got  # on one line it would be cut in the middle
    assert " ".join(got["lines"]) == got["note"] and len(got["lines"]) > 1, got
    assert all(px <= got["room_px"] for px in got["lines_px"]), got
