"""The model store against a real HTTP server on 127.0.0.1: downloads, resume, damage, cancel, locks."""

import hashlib
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time

import pytest

from engine import download as dl
from engine.errors import CancelledError, ChecksumError, DownloadError, ModelError, ModelMissingError
from engine.store import ModelStore, default_models_dir
from tests.engine.http_fixture import file_server  # noqa: F401 (a fixture)

SIZE = 3 * 1024 * 1024 + 12_345  # not a multiple of any chunk size
PAYLOAD = random.Random(2).randbytes(SIZE)
SHA = hashlib.sha256(PAYLOAD).hexdigest()
ID = "test-model"


@pytest.fixture
def catalog_file(tmp_path, monkeypatch):
    """Write FATHOM_CATALOG entries: catalog_file(id=dict(...), ...)."""
    path = tmp_path / "catalog.json"

    def write(**models):
        path.write_text(json.dumps({"models": models}), encoding="utf-8")
        monkeypatch.setenv("FATHOM_CATALOG", str(path))

    return write


@pytest.fixture
def served(file_server, catalog_file):  # noqa: F811 (pytest passes the imported fixture)
    """The payload served over HTTP and catalogued as ID with its size and sha256."""
    url = file_server.add("model.onnx", PAYLOAD)
    catalog_file(**{ID: {"url": url, "size": SIZE, "sha256": SHA, "license": "Apache-2.0"}})
    return file_server


@pytest.fixture
def store(tmp_path):
    return ModelStore(tmp_path / "models")


class Progress:
    def __init__(self):
        self.calls = []

    def __call__(self, done, total):
        self.calls.append((done, total))

    def assert_monotonic_to(self, total):
        done = [d for d, _ in self.calls]
        assert done == sorted(done), "progress went backwards"
        assert {t for _, t in self.calls} == {total}
        assert self.calls[-1] == (total, total)


def gets(server):
    return [r for r in server.requests_for("model.onnx") if r.method == "GET"]


def test_default_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FATHOM_MODELS_DIR", str(tmp_path / "m"))
    assert ModelStore().folder == tmp_path / "m"
    monkeypatch.delenv("FATHOM_MODELS_DIR")
    if sys.platform.startswith("linux"):
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
        assert default_models_dir() == tmp_path / "cache" / "fathom" / "models"
    assert ModelStore(tmp_path / "x").folder == tmp_path / "x"


def test_full_download_reports_progress_and_installs_the_verified_file(served, store):
    assert store.status(ID) == "missing"
    progress = Progress()
    path = store.download(ID, progress=progress)
    assert path == store.folder / f"{ID}.onnx" and path.read_bytes() == PAYLOAD
    progress.assert_monotonic_to(SIZE)
    assert len(progress.calls) > 5  # streamed, not one gulp
    assert store.status(ID) == "installed" and store.resolve(ID, verify=True) == path
    assert sorted(p.name for p in store.folder.iterdir()) == [path.name]  # no .part, no .lock left
    assert [r.range for r in gets(served)] == [None]
    # Idempotent: an installed, verified file is not fetched again.
    assert store.download(ID) == path
    assert len(gets(served)) == 1


def test_a_truncated_download_is_resumed_with_a_range_request(served, store):
    served.set("model.onnx", truncate_after=1_000_000)
    with pytest.raises(DownloadError, match=r"stopped after 1\.0 MB of 3\.2 MB.*resume"):
        store.download(ID)
    part = dl.part_path(store.path_for(ID))
    assert part.stat().st_size == 1_000_000 and store.status(ID) == "partial"
    with pytest.raises(ModelMissingError):
        store.resolve(ID)  # a partial file is never handed out
    served.set("model.onnx", truncate_after=None)
    progress = Progress()
    assert store.download(ID, progress=progress).read_bytes() == PAYLOAD
    progress.assert_monotonic_to(SIZE)
    first, second = gets(served)
    assert (first.status, first.body_bytes) == (200, 1_000_000)
    assert (second.range, second.status, second.body_bytes) == ("bytes=1000000-", 206, SIZE - 1_000_000)
    assert not part.exists()


def test_a_server_ignoring_range_restarts_the_download(served, store):
    served.set("model.onnx", truncate_after=700_000)
    with pytest.raises(DownloadError):
        store.download(ID)
    served.set("model.onnx", truncate_after=None, ignore_range=True)
    progress = Progress()
    assert store.download(ID, progress=progress).read_bytes() == PAYLOAD
    progress.assert_monotonic_to(SIZE)
    second = gets(served)[1]
    assert (second.range, second.status, second.body_bytes) == ("bytes=700000-", 200, SIZE)


def test_a_corrupted_download_is_rejected_and_nothing_is_installed(served, store):
    served.set("model.onnx", corrupt_at=SIZE // 2)
    with pytest.raises(ChecksumError, match="sha256") as err:
        store.download(ID)
    assert SHA in str(err.value) and "deleted" in str(err.value)
    assert store.status(ID) == "missing" and list(store.folder.iterdir()) == []
    served.set("model.onnx", corrupt_at=None)
    assert store.download(ID).read_bytes() == PAYLOAD


def test_a_damaged_partial_file_fails_the_check_after_resume(served, store):
    part = dl.part_path(store.path_for(ID))
    part.parent.mkdir(parents=True)
    part.write_bytes(b"\0" * 500_000)  # not a prefix of the model
    with pytest.raises(ChecksumError):
        store.download(ID)
    assert gets(served)[0].range == "bytes=500000-" and not part.exists()
    assert store.download(ID).read_bytes() == PAYLOAD  # the next try starts clean


def test_a_redirect_is_followed_and_keeps_the_range(served, catalog_file, store):
    hub = served.add("resolve/model.onnx", b"", redirect=served.url("model.onnx"))
    catalog_file(**{ID: {"url": hub, "size": SIZE, "sha256": SHA}})
    served.set("model.onnx", truncate_after=400_000)
    with pytest.raises(DownloadError):
        store.download(ID)
    served.set("model.onnx", truncate_after=None)
    assert store.download(ID).read_bytes() == PAYLOAD
    assert [r.status for r in served.requests_for("resolve/model.onnx")] == [302, 302]
    assert [(r.range, r.status) for r in gets(served)] == [(None, 200), ("bytes=400000-", 206)]


def test_a_partial_file_longer_than_the_servers_starts_over(served, catalog_file, store):
    catalog_file(**{ID: {"url": served.url("model.onnx"), "sha256": SHA}})  # size unknown
    part = dl.part_path(store.path_for(ID))
    part.parent.mkdir(parents=True)
    part.write_bytes(PAYLOAD + b"extra")
    assert store.download(ID).read_bytes() == PAYLOAD
    assert [(r.range, r.status) for r in gets(served)] == [(f"bytes={SIZE + 5}-", 416), (None, 200)]


@pytest.mark.parametrize("status", [404, 500])
def test_http_errors_name_the_status_and_the_url(served, store, status):
    served.set("model.onnx", status=status)
    with pytest.raises(DownloadError) as err:
        store.download(ID)
    assert f"HTTP {status}" in str(err.value) and served.url("model.onnx") in str(err.value)
    assert store.status(ID) == "missing"


def test_an_unreachable_server_is_a_download_error(catalog_file, store):
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    catalog_file(**{ID: {"url": f"http://127.0.0.1:{port}/m.onnx", "size": SIZE, "sha256": SHA}})
    with pytest.raises(DownloadError, match=f"Could not reach 127.0.0.1:{port}"):
        store.download(ID, timeout=5)


def test_a_stalled_transfer_times_out(served, store):
    served.set("model.onnx", delay=3.0)
    started = time.monotonic()
    with pytest.raises(DownloadError, match="timed out"):
        store.download(ID, timeout=0.3)
    assert time.monotonic() - started < 2.5


def test_a_size_the_catalogue_does_not_expect_is_refused_before_downloading(served, catalog_file, store):
    catalog_file(**{ID: {"url": served.url("model.onnx"), "size": SIZE + 1, "sha256": SHA}})
    with pytest.raises(DownloadError, match=f"offers {SIZE} bytes"):
        store.download(ID)
    assert store.status(ID) == "missing" and not dl.part_path(store.path_for(ID)).exists()


def test_cancel_keeps_the_partial_file_for_a_later_resume(served, store):
    served.set("model.onnx", delay=0.002)
    progress = Progress()
    cancel = threading.Event()

    def on_progress(done, total):
        progress(done, total)
        if done >= 1_000_000:
            cancel.set()

    with pytest.raises(CancelledError, match="resume"):
        store.download(ID, progress=on_progress, cancel=cancel)
    part = dl.part_path(store.path_for(ID))
    kept = part.stat().st_size
    assert 1_000_000 <= kept < SIZE and store.status(ID) == "partial"
    assert not dl.lock_path(store.path_for(ID)).exists()
    served.set("model.onnx", delay=0)
    assert store.download(ID, cancel=lambda: False).read_bytes() == PAYLOAD
    assert gets(served)[-1].range == f"bytes={kept}-"


def test_offline_the_error_says_online_access_is_off_and_what_to_do(served, store):
    with pytest.raises(ModelMissingError) as err:
        store.download(ID, allow_network=False)
    message = str(err.value)
    assert "Online access is off" in message and "Allow Online Access" in message
    assert "FATHOM_CATALOG" in message and '{"models": {"test-model": {"path":' in message
    assert gets(served) == []
    # Offline is fine once the model is there.
    path = store.download(ID)
    assert store.download(ID, allow_network=False) == path


def test_a_missing_model_says_how_to_get_it(served, store):
    with pytest.raises(ModelMissingError) as err:
        store.resolve(ID)
    message = str(err.value)
    assert "Preferences > Add-ons > Fathom" in message and f"fathom models download {ID}" in message
    assert "FATHOM_CATALOG" in message and str(store.folder) in message


def test_an_installed_file_of_the_wrong_size_is_not_installed(served, store):
    path = store.path_for(ID)
    path.parent.mkdir(parents=True)
    path.write_bytes(PAYLOAD[:-1])
    assert store.status(ID) == "missing"
    with pytest.raises(ModelMissingError):
        store.resolve(ID)
    assert store.download(ID).read_bytes() == PAYLOAD  # replaced by the real file


def test_verify_catches_a_damaged_installed_file_and_download_repairs_it(served, store):
    path = store.download(ID)
    data = bytearray(PAYLOAD)
    data[10] ^= 1
    path.write_bytes(bytes(data))  # same size: only the hash can tell
    assert store.status(ID) == "installed"
    progress = Progress()
    with pytest.raises(ChecksumError, match="damaged"):
        store.verify(ID, progress=progress)
    progress.assert_monotonic_to(SIZE)
    with pytest.raises(ChecksumError):
        store.resolve(ID, verify=True)
    assert store.download(ID).read_bytes() == PAYLOAD
    assert len(gets(served)) == 2


def test_a_local_override_resolves_to_the_users_file(tiny_model, catalog_file, store):
    digest = hashlib.sha256(tiny_model.read_bytes()).hexdigest()
    catalog_file(**{"da2-small": {"path": str(tiny_model), "sha256": digest}})
    assert store.path_for("da2-small") == tiny_model and store.status("da2-small") == "installed"
    assert store.resolve("da2-small", verify=True) == tiny_model
    assert store.download("da2-small", allow_network=False) == tiny_model
    with pytest.raises(ModelError, match="does not delete"):
        store.delete("da2-small")
    assert tiny_model.exists()
    catalog_file(**{"da2-small": {"path": str(tiny_model), "sha256": "0" * 64}})
    with pytest.raises(ChecksumError, match="correct its sha256"):
        store.resolve("da2-small", verify=True)
    catalog_file(**{"da2-small": {"path": str(tiny_model.with_name("gone.onnx"))}})
    with pytest.raises(ModelMissingError, match="no file there"):
        store.resolve("da2-small")


def test_the_standin_model_can_be_catalogued_without_a_hash(standin_model, catalog_file, store):
    catalog_file(**{"standin": {"path": str(standin_model), "name": "Stand-in"}})
    assert store.resolve("standin", verify=True) == standin_model  # no sha256: nothing to hash


def test_list_models_and_delete(served, store):
    rows = {row.info.id: row for row in store.list_models()}
    assert {"da2-small", "da2-small-fp16", ID} <= set(rows)
    assert rows[ID].status == "missing" and rows["da2-small"].path == store.folder / "depth-anything-v2-small.onnx"
    served.set("model.onnx", truncate_after=200_000)
    with pytest.raises(DownloadError):
        store.download(ID)
    row = next(r for r in store.list_models() if r.info.id == ID)
    assert (row.status, row.part_bytes) == ("partial", 200_000)
    assert store.delete(ID) is True and store.status(ID) == "missing"
    assert store.delete(ID) is False
    served.set("model.onnx", truncate_after=None)
    store.download(ID)
    assert store.delete(ID) is True and list(store.folder.iterdir()) == []


def test_two_threads_downloading_one_model_fetch_it_once(served, store):
    served.set("model.onnx", delay=0.005)
    results, errors = [], []

    def worker():
        try:
            results.append(store.download(ID))
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == [] and len(results) == 2 and results[0] == results[1]
    assert results[0].read_bytes() == PAYLOAD and len(gets(served)) == 1


def write_lock(store, pid, age_s=0.0):
    lock = dl.lock_path(store.path_for(ID))
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "started": time.time()}))
    if age_s:
        past = time.time() - age_s
        os.utime(lock, (past, past))
    return lock


def test_a_download_running_in_another_process_is_not_disturbed(served, store):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        lock = write_lock(store, other.pid)
        with pytest.raises(DownloadError, match=f"{other.pid}.*delete {lock}"):
            store.download(ID)
        assert lock.exists() and gets(served) == []
    finally:
        other.kill()
        other.wait()


@pytest.mark.skipif(os.name != "posix", reason="owner liveness is probed on POSIX only")
def test_a_lock_left_by_a_dead_process_is_taken_over(served, store):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    write_lock(store, gone.pid)
    assert store.download(ID).read_bytes() == PAYLOAD


def test_a_lock_not_touched_for_long_is_taken_over(served, store):
    write_lock(store, pid=1, age_s=dl.STALE_AFTER_S + 5)  # pid 1 is alive: only the age tells
    assert store.download(ID).read_bytes() == PAYLOAD
