"""The Server backend in real Blender (the installed zip) against the real depth server on 127.0.0.1.

The server runs from .venv (this interpreter has bpy, not the server's packages) in a subprocess
with its own data folder and a catalogue pointing "da2-small" at the tiny test model, and
"da2-broken" at a file no onnxruntime can load (a job that fails on the server, to be refunded).
"""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEV_PYTHON = ROOT / ".venv" / "bin" / "python"
MODULE = "bl_ext.user_default.fathom"
TOP_UP = "https://tokens.example.com/buy"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DepthServer:
    """`python -m server` on a fixed port (so it can be restarted where clients expect it)."""

    def __init__(self, folder: Path, catalog: Path, **settings):
        self.folder, self.port = folder, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FATHOM_")}
        self.env.update(
            {
                "FATHOM_CATALOG": str(catalog),
                "FATHOM_MODELS_DIR": str(folder / "models"),
                "FATHOM_SERVER_DATA_DIR": str(folder / "data"),
                "FATHOM_SERVER_PORT": str(self.port),
                "FATHOM_SERVER_LOG_LEVEL": "warning",
                "FATHOM_SERVER_POLL_SECONDS": "0.1",
                "FATHOM_SERVER_RATE_PER_SECOND": "0",
                "FATHOM_SERVER_TOP_UP_URL": TOP_UP,
                "FATHOM_SERVER_MODELS": json.dumps({"small": "da2-small", "broken": "da2-broken"}),
                "OMP_NUM_THREADS": "1",
            }
        )
        self.env.update({f"FATHOM_SERVER_{k.upper()}": str(v) for k, v in settings.items()})
        self.proc = None

    def start(self, **settings):
        env = {**self.env, **{f"FATHOM_SERVER_{k.upper()}": str(v) for k, v in settings.items()}}
        self.log = open(self.folder / "server.log", "ab")
        self.proc = subprocess.Popen(
            [DEV_PYTHON, "-m", "server"],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("the server exited:\n" + (self.folder / "server.log").read_text())
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the server did not start in 60 s")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc is not None:
            self.log.close()
        self.proc = None

    def user(self, tokens: int) -> str:
        """A new user with ``tokens``; its API key."""
        name = f"artist{time.monotonic_ns()}"
        self.admin("create-user", name, "--tokens", str(tokens))
        return self.admin("create-key", name).split()[0]

    def admin(self, *args) -> str:
        result = subprocess.run(
            [DEV_PYTHON, "-m", "server.admin", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def get(self, key: str, path: str) -> dict:
        req = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {key}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def balance(self, key) -> int:
        return self.get(key, "/v2/me")["balance"]

    def artworks(self, key) -> list:
        return self.get(key, "/v2/artworks?limit=100")["artworks"]


@pytest.fixture(scope="module")
def remote_catalog(tiny_model_file, tmp_path_factory):
    folder = tmp_path_factory.mktemp("remote-catalog")
    broken = folder / "broken.onnx"
    broken.write_bytes(b"this is not an ONNX model" * 40)
    path = folder / "catalog.json"
    path.write_text(
        json.dumps({"models": {"da2-small": {"path": str(tiny_model_file)}, "da2-broken": {"path": str(broken)}}})
    )
    return path


@pytest.fixture(scope="module")
def server(remote_catalog, tmp_path_factory):
    srv = DepthServer(tmp_path_factory.mktemp("depth-server"), remote_catalog).start()
    yield srv
    srv.stop()


@pytest.fixture
def idle_server(remote_catalog, tmp_path):
    """A server without workers: its jobs wait in 'starting' until it is restarted with one."""
    (tmp_path / "idle").mkdir()
    srv = DepthServer(tmp_path / "idle", remote_catalog).start(workers=0)
    yield srv
    srv.stop()


def setup(url, key, *, online=True):
    """Scenario code: the Server backend configured, a saved .blend with a picture chosen."""
    return f"""
import importlib, numpy as np
fathom = importlib.import_module({MODULE!r})
api = importlib.import_module({MODULE!r} + ".api")
account = importlib.import_module({MODULE!r} + ".bridge.remote.account")
online = importlib.import_module({MODULE!r} + ".bridge.remote.online")
pending = importlib.import_module({MODULE!r} + ".bridge.remote.pending")
backends = importlib.import_module({MODULE!r} + ".bridge.generation.backends")
nodes = importlib.import_module({MODULE!r} + ".bridge.generation.nodes")
jobs = importlib.import_module({MODULE!r} + ".bridge.generation.worker")
engine_remote = importlib.import_module({MODULE!r} + ".engine.remote")
prefs = bpy.context.preferences.addons[{MODULE!r}].preferences
bpy.context.preferences.system.use_online_access = {online!r}
prefs.backend, prefs.server_url, prefs.api_key = "SERVER", {url!r}, {key!r}

def make_image(name="Photo", width=64, height=48):
    img = bpy.data.images.new(name, width, height)
    px = np.ones((height, width, 4), np.float32)
    px[..., :3] = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    px[..., 0] *= np.linspace(0.6, 1.0, width, dtype=np.float32)[None, :]
    img.pixels.foreach_set(px.ravel())
    img.pack()  # kept in the .blend: a reopened file has the same picture
    return img

scene = bpy.context.scene
if bpy.data.images.get("Photo") is None:
    photo = make_image()
    scene.fathom.source, scene.fathom.image, scene.fathom.resolution = "IMAGE", photo, 256
    bpy.ops.wm.save_as_mainfile(filepath=tmp + "/shot.blend")

def depth_nodes():
    tree = nodes.compositor_tree(scene, create=False)
    if tree is None:
        return []
    return [(n.name, n.image.name if n.image else None) for n in tree.nodes if n.bl_idname == "CompositorNodeImage"]

def run_in_worker(job, cancel_when=None):
    # The interactive path without its modal timer: the job on the worker thread, finish on this one.
    running = jobs.start(job)
    while not running.wait(0.05):
        if cancel_when is not None and cancel_when(job):
            running.cancel()
            cancel_when = None
    jobs.collect(running)
    jobs.drain()
    return running
"""


def test_remote_generation_lands_in_the_local_node_and_is_not_paid_twice(blender, server, catalog_for, tiny_model_file):
    key = server.user(tokens=5)
    got = blender(
        setup(server.url, key),
        """
        local = api.generate_depth(image="Photo", backend="local")
        local_node = depth_nodes()

        assert bpy.ops.fathom.test_connection() == {"FINISHED"}  # headless: synchronous, fills the cache
        button = account.generate_button(bpy.context)

        job = backends.prepare(bpy.context)
        running = run_in_worker(job)
        assert running.error is None, running.error
        image, node = job.finish(bpy.context)
        first = {"path": str(job.path), "image": image.name, "node": node.name, "job": job.job_id,
                 "colorspace": image.colorspace_settings.name, "size": list(image.size),
                 "remote": image["fathom"]["remote"].to_dict(), "nodes": depth_nodes(),
                 "pending": pending.entries()}
        diff = float(np.abs(job.depth_map.depth - local.depth_map.depth).mean())

        again = api.generate_depth(image="Photo", backend="server")   # identical: reused, no tokens
        reused = [again.reused, float(np.abs(again.depth_map.depth - job.depth_map.depth).max()),
                  again.depth_map.model, again.depth_map.near_is_bright == job.depth_map.near_is_bright]
        button_op = list(bpy.ops.fathom.generate_depth())              # the button: reused too
        reused_job = backends.prepare(bpy.context, in_process=True)  # as clicked: encoded and hashed in run
        deferred = [reused_job.picture is None, reused_job.capture_later is not None]
        reused_job.run()
        done = reused_job.done_message(0.1)
        balance_after_reuse = account.account.view(prefs.server_url, prefs.api_key).balance
        forced = api.generate_depth(image="Photo", backend="server", force=True)
        again_op = list(bpy.ops.fathom.generate_depth(force=True))     # Generate Again: a new job
        gen = bpy.types.Operator.bl_rna_get_subclass_py("FATHOM_OT_generate_depth")
        tips = [gen.description(bpy.context, type("P", (), {"force": f, "redo": False})) for f in (True, False)]
        images = sorted(i.name for i in bpy.data.images if "fathom" in i.keys())
        emit({"local_node": local_node, "button": button, "first": first, "diff": diff, "reused": reused,
              "done": done, "deferred": deferred, "tips": tips, "forced_reused": forced.reused,
              "again": [str(again.path), again.image.name, again.node.name], "ops": [button_op, again_op],
              "forced": [str(forced.path), forced.node.name, forced.image["fathom"]["remote"]["job"]],
              "balance_after_reuse": balance_after_reuse, "images": images, "nodes": depth_nodes(),
              "balance_shown": account.account.view(prefs.server_url, prefs.api_key).balance})
    """,
        catalog=catalog_for(da2_small=tiny_model_file),
    )
    assert got["button"]["text"] == "Generate Depth · 1 token" and got["button"]["kind"] == "generate"
    first = got["first"]
    # The same node the local generation made for this source now shows the server's result.
    assert len(got["local_node"]) == 1 and first["nodes"] == [[got["local_node"][0][0], first["image"]]]
    assert first["node"] == got["local_node"][0][0]
    assert first["colorspace"] == "Non-Color" and first["size"] == [64, 48]
    assert Path(first["path"]).parent.name == "generated" and Path(first["path"]).suffix == ".exr"
    assert first["remote"]["job"] == first["job"] and first["remote"]["cost"] == 1
    assert first["pending"] == []
    assert got["diff"] < 0.02  # same picture, same settings: the server's map is the local one
    # The identical second generation reused the first result: same file, image and node; no tokens.
    assert got["again"] == [first["path"], first["image"], first["node"]]
    assert got["balance_after_reuse"] == 4
    # ... and its depth map is the first one's, read back from the file.
    assert got["reused"] == [True, 0.0, "da2-small", True] and not got["forced_reused"]
    assert "identical depth map from the depth server was reused, no tokens spent" in got["done"]
    assert got["deferred"] == [True, True]  # clicked, the main thread neither encoded nor hashed the picture
    assert got["done"].endswith("generated/" + Path(first["path"]).name)
    assert "spends tokens again" in got["tips"][0] and got["tips"][1] is None
    # Generate Again spent a token on a new job and replaced the image in the same node.
    assert got["forced"][0] != first["path"] and got["forced"][1] == first["node"]
    assert got["forced"][2] != first["job"]
    assert got["ops"] == [["FINISHED"], ["FINISHED"]]
    # local, remote, forced by the API, forced by the operator: four results, the last in the node
    assert len(got["images"]) == 4 and got["nodes"] == [[first["node"], got["images"][-1]]]
    assert server.balance(key) == 2 and got["balance_shown"] == 2
    assert len(server.artworks(key)) == 3


def test_server_backend_renders_in_a_child_and_the_main_thread_never_waits(
    blender, server, catalog_for, tiny_model_file
):
    """Render source with the Server backend, as the modal operator runs it: the render happens in a
    child Blender on the worker thread, the picture's cache key is made after it, and the main
    thread keeps ticking. A second identical render is recognised after rendering: no tokens."""
    key = server.user(tokens=5)
    scene_code = f"""
import threading, time
sys.path.insert(0, {str(ROOT)!r})
from scripts.sample_scene import build_scene
build_scene(320, 180, 256)
load_profile()  # build_scene starts from factory settings, which disables the extension
renders_here = []
bpy.app.handlers.render_pre.append(lambda *_: renders_here.append(threading.get_ident()))
"""
    got = blender(
        scene_code,
        setup(server.url, key),
        """
        scene.fathom.source = "RENDER"
        bpy.ops.wm.save_mainfile()
        assert bpy.ops.fathom.refresh_balance() == {"FINISHED"}

        def generate():
            started = time.perf_counter()
            job = backends.prepare(bpy.context, offload_render=True)
            prepare_s = time.perf_counter() - started
            deferred = [job.capture is None, job.render is not None, job.cache_key == "", job.idempotency_key == ""]
            running = jobs.start(job)
            ticks, messages = [time.perf_counter()], set()
            while not running.wait(0.02):  # the modal timer's part
                ticks.append(time.perf_counter())
                messages.add(running.message)
            ticks.append(time.perf_counter())
            jobs.collect(running)
            assert running.error is None, running.error
            image, node = job.finish(bpy.context)
            return {"prepare_s": prepare_s, "deferred": deferred, "run_s": ticks[-1] - ticks[0],
                    "longest_pause_s": max(b - a for a, b in zip(ticks, ticks[1:])),
                    "rendered": any(m.startswith("Rendering: sample") for m in messages),
                    "sent": any(m.startswith("Sending") for m in messages), "reused": job.reused,
                    "path": str(job.path), "image": image.name, "size": list(image.size), "node": node.name,
                    "nodes": depth_nodes(), "source": image["fathom"]["source"].to_dict(),
                    "job": image["fathom"]["remote"]["job"], "cache_key": job.cache_key}

        first = generate()
        second = generate()
        # Generate Again, cancelled while rendering: nothing is sent.
        job = backends.prepare(bpy.context, offload_render=True, force=True)
        running = jobs.start(job)
        while not running.wait(0.02):
            if running.message.startswith("Rendering: sample"):
                running.cancel()
        jobs.collect(running)
        emit({"first": first, "second": second, "renders_here": len(renders_here),
              "pending": pending.entries(), "cancelled": [running.cancelled, str(running.error), job.job_id]})
    """,
        catalog=catalog_for(da2_small=tiny_model_file),
    )
    first, second = got["first"], got["second"]
    print({k: [round(r[k], 3) for r in (first, second)] for k in ("prepare_s", "run_s", "longest_pause_s")})
    assert got["renders_here"] == 0  # both renders happened in the child
    for run in (first, second):
        # Nothing was rendered or hashed in prepare; the main thread never paused for long.
        assert run["deferred"] == [True, True, True, True] and run["rendered"], run
        assert run["prepare_s"] < 1.5, run
        assert run["longest_pause_s"] < min(1.0, run["run_s"] / 4), run
    assert first["run_s"] > 2.0, first  # a render of seconds: the bound above is about blocking
    assert first["sent"] and not first["reused"] and first["size"] == [320, 180]
    assert first["source"]["kind"] == "render" and first["nodes"] == [[first["node"], first["image"]]]
    assert Path(first["path"]).parent.name == "generated" and got["pending"] == []
    # The same render again: its cache key, made after rendering, finds the first result.
    assert second["cache_key"] == first["cache_key"] and second["reused"] and not second["sent"]
    assert [second["path"], second["image"], second["node"]] == [first["path"], first["image"], first["node"]]
    assert got["cancelled"] == [True, "The render was cancelled; nothing was written.", None]
    assert server.balance(key) == 4 and len(server.artworks(key)) == 1


def test_unaffordable_generation_submits_nothing_and_shows_the_shortfall(blender, server):
    key = server.user(tokens=0)
    got = blender(
        setup(server.url, key),
        f"nobody = 'http://127.0.0.1:{free_port()}'",
        """
        bpy.ops.fathom.refresh_balance()
        button = account.generate_button(bpy.context)
        errors = []
        try:  # known balance: refused before any network
            backends.prepare(bpy.context)
        except engine_remote.InsufficientTokensError as exc:
            errors.append([str(exc), exc.shortfall, exc.top_up_url])
        account.account.clear()  # unknown balance: the server says 402 and charges nothing
        try:
            api.generate_depth(image="Photo", backend="server")
        except engine_remote.InsufficientTokensError as exc:
            errors.append([str(exc), exc.shortfall, exc.top_up_url])
        # Test Connection's answers when something is wrong, in words that say what to do.
        RemoteClient = engine_remote.RemoteClient
        wrong_key = account.account.refresh(RemoteClient(prefs.server_url, "fth_wrong")).error
        refused = account.account.refresh(RemoteClient(nobody, "fth_x")).error
        bpy.context.preferences.system.use_online_access = False
        try:
            backends.prepare(bpy.context)
            offline = None
        except online.OfflineError as exc:
            offline = str(exc)
        emit({"button": button, "errors": errors, "pending": pending.entries(), "nodes": depth_nodes(),
              "wrong_key": wrong_key, "refused": refused, "offline": offline,
              "offline_button": account.generate_button(bpy.context)})
    """,
    )
    assert got["button"]["kind"] == "top_up" and got["button"]["text"] == "Get tokens · 1 more"
    assert got["button"]["shortfall"] == 1
    assert len(got["errors"]) == 2
    for message, shortfall, top_up in got["errors"]:
        assert shortfall == 1 and top_up == TOP_UP
        assert "Short by 1 token" in message and TOP_UP in message
    assert got["pending"] == [] and got["nodes"] == []
    assert server.balance(key) == 0 and server.artworks(key) == []
    assert "refused the API key (HTTP 401)" in got["wrong_key"] and "check the API key" in got["wrong_key"]
    assert "connection refused" in got["refused"] and "is it running" in got["refused"]
    assert "Allow Online Access" in got["offline"] and "--online-mode" in got["offline"]
    assert got["offline_button"]["note"].startswith("Online access is off")


def test_failure_on_the_server_is_refunded_and_shown(blender, server):
    """Worded from the job's errorCode, the outcome first (issue 17): no local-model advice, no
    server internals, singular and plural right."""
    key = server.user(tokens=2)
    got = blender(
        setup(server.url, key),
        """
        messages = importlib.import_module(MODULE + ".bridge.remote.messages")
        bpy.ops.fathom.refresh_balance()
        try:
            api.generate_depth(image="Photo", backend="server", model="da2-broken")
            error = None
        except engine_remote.JobFailedError as exc:
            error = [str(exc), exc.refunded, exc.job.get("errorCode")]
        said = messages.split(error[0])
        emit({"error": error, "pending": pending.entries(), "nodes": depth_nodes(), "headline": said.headline,
              "details": said.details, "shown": account.account.view(prefs.server_url, prefs.api_key).balance})
    """.replace("MODULE", repr(MODULE)),
    )
    message, refunded, code = got["error"]
    assert refunded == 1 and code == "inference_failed"
    # The outcome leads, in one short sentence; the refund and what to do follow.
    assert got["headline"] == "Refunded: the server could not make this depth map.", got
    assert got["details"].startswith("Depth map ") and "your 1 token came back" in got["details"], got
    assert "tell the server's operator" in got["details"]
    for wrong in ("fathom models verify", "Preferences > Add-ons", "download it again", "onnx", "/", "..", "(s)"):
        assert wrong not in message, (wrong, message)
    assert got["pending"] == [] and got["nodes"] == []
    assert got["shown"] == 2 and server.balance(key) == 2
    (artwork,) = server.artworks(key)
    assert artwork["status"] == "failed"


def test_cancel_cancels_the_job_on_the_server(blender, idle_server):
    key = idle_server.user(tokens=3)
    got = blender(
        setup(idle_server.url, key),
        """
        job = backends.prepare(bpy.context)
        running = run_in_worker(job, cancel_when=lambda job: job.job_id is not None)
        emit({"cancelled": running.cancelled, "error": str(running.error), "job": job.job_id,
              "refunded": running.error.refunded, "pending": pending.entries(), "nodes": depth_nodes()})
    """,
    )
    assert got["cancelled"] and got["refunded"] == 1 and "refunded" in got["error"]
    assert got["pending"] == [] and got["nodes"] == []
    (artwork,) = idle_server.artworks(key)
    assert artwork["id"] == got["job"] and artwork["status"] == "canceled"
    assert idle_server.balance(key) == 3


def test_disabling_the_extension_stops_what_it_started(blender, idle_server, remote_catalog):
    """unregister() while a paid job waits on the server, an account refresh runs, a redraw timer is
    set and a local model session is cached: the job is cancelled (and refunded), no Fathom thread or
    timer is left, the caches are empty."""
    key = idle_server.user(tokens=3)
    got = blender(
        setup(idle_server.url, key),
        """
        import threading, time, addon_utils
        session = importlib.import_module({MODULE!r} + ".engine.session")
        api.generate_depth(image="Photo", backend="local")  # caches an onnxruntime session
        cached = len(session._cache)
        running = jobs.start(backends.prepare(bpy.context))
        while running.job.job_id is None and not running.done:  # until the server has accepted it
            time.sleep(0.05)
        client = online.client_for(bpy.context)
        account.account.refresh_in_background(client)
        bpy.app.timers.register(account._redraw_tick, first_interval=60)  # as the UI's refresh sets it
        addon_utils.disable({MODULE!r}, default_set=False)
        alive = [t.name for t in threading.enumerate() if t.name.startswith("fathom")]
        emit({{"cached": cached, "after": len(session._cache), "threads": alive, "job": running.job.job_id,
              "done": running.done, "cancelled": running.cancelled, "current": jobs.current() is None,
              "timer": bpy.app.timers.is_registered(account._redraw_tick),
              "views": len(account.account._views), "enabled": addon_utils.check({MODULE!r})[1]}})
    """.format(MODULE=MODULE),
        catalog=remote_catalog,
    )
    assert got["cached"] == 1 and got["after"] == 0 and got["views"] == 0
    assert got["done"] and got["cancelled"] and got["current"] and got["job"]
    assert got["threads"] == [] and not got["timer"] and not got["enabled"]
    (artwork,) = idle_server.artworks(key)
    assert artwork["status"] == "canceled" and idle_server.balance(key) == 3  # refunded


@pytest.mark.parametrize("saved", [True, False], ids=["saved", "crashed"])
def test_result_of_a_dropped_connection_is_fetched_after_reopening_the_file(blender, idle_server, tmp_path, saved):
    key = idle_server.user(tokens=3)
    # The server (no workers yet) accepts the job; then it goes away while Blender follows the job.
    # Blender then saves the file, or "crashes" (exits unsaved: the journal in generated/ remembers).
    got = blender(
        setup(idle_server.url, key),
        f"""
        import os, signal
        job = backends.prepare(bpy.context)
        running, stopped = jobs.start(job), False
        while not running.wait(0.05):
            if job.job_id is not None and not stopped:
                os.kill({idle_server.proc.pid}, signal.SIGTERM)
                stopped = True
        jobs.collect(running)
        jobs.drain()
        if {saved!r}:
            bpy.ops.wm.save_mainfile()
        emit({{"error": str(running.error), "kind": type(running.error).__name__, "job": job.job_id,
              "pending": [e["job"] for e in pending.entries()]}})
    """,
    )
    assert got["kind"] == "StillPendingError" and "Fetch Pending Results" in got["error"]
    assert got["pending"] == [got["job"]]
    job = got["job"]
    journal = json.loads((tmp_path / "generated" / ".fathom-pending.json").read_text())
    assert list(journal) == [job] and journal[job]["idempotency_key"]
    idle_server.proc.wait(15)
    idle_server.stop()
    idle_server.start(workers=1)  # back, now with a worker that computes the waiting job

    got = blender(
        'bpy.ops.wm.open_mainfile(filepath=tmp + "/shot.blend")',
        setup(idle_server.url, key),
        """
        noticed = len(pending.entries())  # merged back from the journal by the load handler
        assert bpy.ops.fathom.fetch_pending() == {"FINISHED"}
        scene = bpy.context.scene
        image = [n.image for n in nodes.compositor_tree(scene, create=False).nodes
                 if n.bl_idname == "CompositorNodeImage"][0]
        emit({"noticed": noticed, "pending": pending.entries(), "image": image.name,
              "job": image["fathom"]["remote"]["job"], "file": bpy.path.abspath(image.filepath),
              "source": image["fathom"]["source"].to_dict()})
    """,
    )
    assert got["noticed"] == 1 and got["pending"] == []
    assert got["job"] == job and Path(got["file"]).is_file()
    assert not (tmp_path / "generated" / ".fathom-pending.json").exists()
    assert Path(got["file"]).parent == tmp_path / "generated"
    assert got["source"]["image"] == "Photo"
    assert idle_server.balance(key) == 2  # charged once


def test_headless_cli_with_the_server_backend(blender, fathom_cli, server, tmp_path):
    key = server.user(tokens=5)
    blender(
        setup(server.url, key),
        """
        bpy.context.preferences.system.use_online_access = False
        prefs.backend = "LOCAL"   # the profile is shared with other tests: only the server's address stays
        bpy.ops.wm.save_userpref()
    """,
    )
    blend = tmp_path / "shot.blend"
    args = ("generate", "--source", "image", "Photo", "--backend", "server", "--save")
    offline = fathom_cli(*args, blend=blend)
    assert offline.returncode == 6 and "--online-mode" in offline.stderr and "Online access is off" in offline.stderr
    first = fathom_cli(*args, "--online-mode", blend=blend)
    assert first.returncode == 0, first.stderr
    path = Path(first.stdout.strip().splitlines()[-1])
    assert path.is_file() and path.parent == tmp_path / "generated"
    second = fathom_cli(*args, "--online-mode", blend=blend)  # the saved file holds the result: reused
    assert second.returncode == 0, second.stderr
    assert Path(second.stdout.strip().splitlines()[-1]) == path
    assert "fathom: reused an identical depth map from the depth server, no tokens spent" in second.stderr
    assert "reused" not in first.stderr
    assert server.balance(key) == 4 and len(server.artworks(key)) == 1
