"""Where results live: the local folder and the database behind one interface, the retention
period, and a job's picture leaving the queue's table once a worker has it."""

import time

import pytest

from server.storage import INPUT, DatabaseStorage, LocalStorage
from tests.server.test_api import png_bytes, submit
from tests.server.test_billing import wait_status


@pytest.fixture(params=["local", "database"])
def store(request, tmp_path, database):
    if request.param == "local":
        return LocalStorage(tmp_path / "results")
    with database.transaction() as tx:  # stored files belong to an artwork
        from server import accounts, jobs

        uid = accounts.create_user(tx, "s", tokens=5)
        caller = accounts.caller_for_key(tx, accounts.create_key(tx, uid))
        for _ in range(2):
            jobs.submit(tx, caller, {"model": "small"}, "da2-small", 1, b"png")
        ids = [r["id"] for r in tx.all("SELECT id FROM artworks ORDER BY id")]
    storage = DatabaseStorage(database)
    storage.ids = ids
    return storage


def test_put_get_replace_delete(store):
    a, b = getattr(store, "ids", ["a1", "b2"])
    assert store.get(a, "depth.png") is None
    store.put(a, "depth.png", b"one")
    store.put(a, "depth.png", b"two")  # replaced whole
    store.put(a, INPUT, b"picture")
    store.put(b, "depth.png", b"other")
    assert store.get(a, "depth.png") == b"two" and store.get(a, INPUT) == b"picture"
    store.delete(a, [INPUT])
    assert store.get(a, INPUT) is None and store.get(a, "depth.png") == b"two"
    store.delete(a)
    assert store.get(a, "depth.png") is None and store.get(b, "depth.png") == b"other"


@pytest.mark.parametrize(
    "backend, kind",
    [("sqlite", "local"), ("sqlite", "database"), pytest.param("postgresql", "database", marks=pytest.mark.postgres)],
)
def test_results_served_from_either_storage_then_expired(start_server, tiny_catalog, backend, kind):
    srv = start_server(backend, tiny_catalog, storage=kind, lease_seconds="3", result_retention_hours="0.002")
    client = srv.user(tokens=5)
    art = submit(client, png_bytes(64, 48), resolutionLowerLimit=256, wait=30).json()
    assert art["status"] == "succeeded", art
    png = client.get(art["results"][0])
    assert png.status_code in (200, 410)  # 7 s of retention: normally still there
    if png.status_code == 200:
        assert png.content.startswith(b"\x89PNG") and png.headers["content-type"] == "image/png"
    with srv.db.transaction(readonly=True) as tx:
        files = tx.one("SELECT COUNT(*) AS n FROM stored_files")["n"]
        assert tx.one("SELECT COUNT(*) AS n FROM artwork_inputs")["n"] == 0
    on_disk = list((srv.tmp / "data" / "results").glob("*/*"))
    assert (files, len(on_disk)) in ((2, 0), (0, 2), (0, 0)) and (files or on_disk or png.status_code == 410)
    wait_status(client, art["id"], ("succeeded",))
    r = None
    for _ in range(300):
        r = client.get(art["results"][0])
        if r.status_code == 410:
            break
        time.sleep(0.1)
    assert r.status_code == 410 and r.json()["code"] == "result_gone" and "kept" in r.json()["message"]
    with srv.db.transaction(readonly=True) as tx:
        assert tx.one("SELECT COUNT(*) AS n FROM stored_files")["n"] == 0
    assert not list((srv.tmp / "data" / "results").glob("*/*"))
