"""What the artist reads about the depth server (issue 17), in real Blender against the real server on
127.0.0.1: right numbers, when to fetch again, the headline last among the reports (the status bar
shows it), and a command line whose --save keeps a job the server still owes. (A failed job's
wording: test_remote.py.)"""

import json
import re
import subprocess
import sys
import time

from tests.blender import test_remote
from tests.blender.conftest import _env
from tests.blender.test_remote import ROOT, setup

# The real server fixtures of test_remote.py, used here too.
idle_server, remote_catalog = test_remote.idle_server, test_remote.remote_catalog

# Run inside a scenario: what an operator reported (Blender prints the reports of a Python call).
CAPTURE = """
import os, tempfile
def captured(fn):
    sys.stdout.flush()
    saved, out = os.dup(1), tempfile.TemporaryFile()
    os.dup2(out.fileno(), 1)
    try:
        value = fn()
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
    out.seek(0)
    lines = out.read().decode().splitlines()
    return value, [line for line in lines if line.split(":")[0] in ("Info", "Warning", "Error")]
"""


def test_still_pending_says_how_long_it_waited_and_when_to_fetch_again(blender, idle_server):
    key = idle_server.user(tokens=1)
    got = blender(
        setup(idle_server.url, key),
        CAPTURE,
        """
        import time
        job = backends.prepare(bpy.context)
        job.follow_seconds = 0.5
        try:
            job.run()
        except Exception as exc:
            submitted = [type(exc).__name__, str(exc)]
        jobs.drain()
        bpy.ops.wm.save_mainfile()
        assert len(pending.entries()) == 1
        started = time.monotonic()
        result, reports = captured(lambda: sorted(bpy.ops.fathom.fetch_pending(follow_seconds=5)))
        by_api = api.fetch_pending(wait=1)  # headless: synchronous, one message per job
        emit({"submitted": submitted, "result": result, "reports": reports, "by_api": by_api,
              "waited": time.monotonic() - started, "pending": len(pending.entries()),
              "balance": account.describe(account.account.refresh(online.client_for(bpy.context)))})
    """,
    )
    kind, first = got["submitted"]
    assert kind == "StillPendingError" and first.startswith("Not fetched yet: the depth map is still queued"), first
    assert got["result"] == ["FINISHED"] and got["pending"] == 1
    # The details first (the Info log), the outcome last: the status bar shows the newest report.
    (details, headline) = got["reports"]
    assert details.startswith("Info: ") and headline.startswith("Warning: "), got["reports"]
    seconds = int(re.search(r"on the server after (\d+) s\.$", headline).group(1))
    # The time it followed the job (asked: 5 s, in 2 s long polls), not the inner poll's 2 s; at most
    # what the whole operator took.
    assert 4 <= seconds <= got["waited"] + 0.5, (headline, got["waited"])
    # When to try again: this server says it has no worker running.
    assert "No worker is running" in details and "Fetch Pending Results again" in details, details
    assert "no tokens are lost" in details
    (by_api,) = got["by_api"]
    assert re.match(r"Not fetched yet: the depth map is still queued on the server after [12] s\. ", by_api), by_api
    assert got["balance"].endswith(": 0 tokens")  # one token was paid for the job


def test_command_line_save_keeps_a_job_the_server_still_owes(blender, blender_home, idle_server, tmp_path):
    """The connection is lost after the server accepted the job: with --save the .blend is saved
    with the pending record; without it, stderr names the journal that keeps the job."""
    key = idle_server.user(tokens=2)
    blender(
        setup(idle_server.url, key),
        """
        bpy.context.preferences.system.use_online_access = False
        bpy.ops.wm.save_userpref()
        bpy.ops.wm.save_mainfile()
    """,
    )
    blend, journal = tmp_path / "shot.blend", tmp_path / "generated" / ".fathom-pending.json"

    def generate(*extra):
        cmd = [sys.executable, str(ROOT / "scripts" / "blender_cli.py"), "--blend", str(blend), "--"]
        cmd += ["generate", "--source", "image", "Photo", "--backend", "server", "--online-mode", *extra]
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(blender_home), cwd=tmp_path
        )
        deadline = time.monotonic() + 120
        while not idle_server.artworks(key) or len(idle_server.artworks(key)) == generate.seen:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        generate.seen = len(idle_server.artworks(key))
        idle_server.stop()  # the server goes away once it has accepted (and charged) the job
        out, err = proc.communicate(timeout=180)
        idle_server.start(workers=0)
        return proc.returncode, out, err, idle_server.artworks(key)[0]["id"]

    generate.seen = 0
    code, _, err, job = generate()
    assert code == 6 and "Not fetched yet: the depth server did not answer" in err, err
    assert f"is kept in {journal}" in err and "pending fetch --online-mode --save" in err, err
    assert job in json.loads(journal.read_text())

    code, _, err, job2 = generate("--force", "--save")
    assert code == 6 and f"saved {blend} with the pending depth map {job2}" in err, err
    journal.unlink()  # the saved .blend alone must now know the job
    listed = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "blender_cli.py"), "--blend", str(blend), "--", "pending", "list"],
        capture_output=True,
        text=True,
        env=_env(blender_home),
        cwd=tmp_path,
        timeout=180,
    )
    assert listed.returncode == 0 and job2 in listed.stdout, (listed.stdout, listed.stderr)
    assert idle_server.balance(key) == 0  # both jobs were charged once and are still owed
