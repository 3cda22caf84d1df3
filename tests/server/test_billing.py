"""Tokens: charged with the job, 402 without a charge, refunds exactly once, idempotent retries,
cancel, and the ledger always equal to the balances."""

import concurrent.futures as cf
import time
import uuid

import pytest

from tests.server.test_api import png_bytes, submit


def wait_status(client, artwork_id, statuses, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        art = client.get(f"/v2/artworks/{artwork_id}").json()
        if art["status"] in statuses:
            return art
        time.sleep(0.02)
    raise AssertionError(f"artwork {artwork_id} still {art['status']} after {timeout} s")


def kinds(server, client):
    return sorted(e["kind"] for e in server.ledger(client))


def test_402_says_what_is_missing_and_charges_nothing(server):
    client = server.user(tokens=1)
    r = submit(client, resolutionLowerLimit=1024)  # 2 tokens
    assert r.status_code == 402, r.text
    body = r.json()
    assert (body["needed"], body["balance"], body["shortfall"]) == (2, 1, 1)
    assert "get 1 more" in body["message"] and body["code"] == "insufficient_tokens"
    assert server.balance(client) == 1 and kinds(server, client) == ["grant"]
    assert client.get("/v2/artworks").json()["total"] == 0
    assert submit(client, resolutionLowerLimit=512, wait=30).json()["status"] == "succeeded"  # 1 token: fits
    assert server.balance(client) == 0


def test_50_concurrent_submissions_against_20_affordable(server):
    client = server.user(tokens=40)  # 2 tokens each at the default resolution: 20 affordable
    image = png_bytes(32, 32)
    with cf.ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(lambda i: submit(client, image, invertDepth=bool(i % 2)), range(50)))
    codes = [r.status_code for r in answers]
    assert codes.count(202) == 20 and codes.count(402) == 30, codes
    # Every accepted job runs to success (and leaves the shared worker free for the next test).
    for r in answers:
        if r.status_code == 202:
            assert wait_status(client, r.json()["id"], ("succeeded",), timeout=120)["status"] == "succeeded"
    assert server.balance(client) == 0
    assert kinds(server, client).count("charge") == 20
    result = server.admin("reconcile")
    assert result.returncode == 0 and result.stdout.startswith("OK"), result.stdout + result.stderr


def test_failed_job_is_refunded_exactly_once(server):
    client = server.user(tokens=3)
    r = submit(client, png_bytes(64, 64)[:80], resolutionLowerLimit=256)  # header fine, pixels missing
    assert r.status_code == 202, r.text
    art = wait_status(client, r.json()["id"], ("failed",))
    # A stable code and a client message; the decoder's details stay in the server log.
    assert art["errorCode"] == "image_unreadable" and "refunded" in art["error"], art
    assert "truncated" not in art["error"] and "/" not in art["error"].replace("PNG, JPEG, WebP, TIFF", "")
    assert server.balance(client) == 3
    assert kinds(server, client) == ["charge", "grant", "refund"]
    # The refund row is unique per artwork: applying it again is a no-op.
    from server import accounts

    with server.db.transaction() as tx:
        assert accounts.apply(tx, client.user_id, 1, "refund", art["id"]) is None
    assert server.balance(client) == 3 and kinds(server, client).count("refund") == 1


def test_idempotent_retries(server):
    client = server.user(tokens=10)
    image, key = png_bytes(48, 48, seed=7), str(uuid.uuid4())
    first = submit(client, image, key=key, resolutionLowerLimit=256)
    again = submit(client, image, key=key, resolutionLowerLimit=256)
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"] and again.headers["idempotent-replayed"] == "true"
    assert server.balance(client) == 9
    other = submit(client, image, key=key, resolutionLowerLimit=512)
    assert other.status_code == 422 and "different request" in other.json()["message"]
    other = submit(client, png_bytes(48, 48, seed=8), key=key, resolutionLowerLimit=256)
    assert other.status_code == 422
    # Concurrent retries of one request: one artwork, one charge.
    key2 = str(uuid.uuid4())
    with cf.ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: submit(client, image, key=key2, resolutionLowerLimit=256), range(10)))
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["id"] for a in answers}) == 1
    assert server.balance(client) == 8
    # A 402 is not remembered: after a top-up the same key goes through.
    poor = server.user(tokens=0)
    key3 = str(uuid.uuid4())
    assert submit(poor, image, key=key3).status_code == 402
    server.admin("grant", poor.name, "2")
    assert submit(poor, image, key=key3).status_code == 202
    assert server.balance(poor) == 0


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_cancel_before_start_is_refunded(start_server, tiny_catalog, backend):
    srv = start_server(backend, tiny_catalog, workers="0")  # nothing processes: jobs stay queued
    client = srv.user(tokens=5)
    art = submit(client, resolutionLowerLimit=1024).json()
    assert art["status"] == "starting" and srv.balance(client) == 3
    r = client.post(f"/v2/artworks/{art['id']}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "canceled"
    assert srv.balance(client) == 5 and kinds(srv, client) == ["charge", "grant", "refund"]
    again = client.post(f"/v2/artworks/{art['id']}/cancel")
    assert again.status_code == 409 and "already canceled" in again.json()["message"]
    assert srv.balance(client) == 5
    assert client.get(f"/v2/artworks/{art['id']}").json()["status"] == "canceled"
    # A worker started later finds nothing to do for it.
    worker = srv.worker()
    queued = submit(client, resolutionLowerLimit=256, wait=30).json()
    assert queued["status"] == "succeeded"
    worker.stop()
    assert client.get(f"/v2/artworks/{art['id']}").json()["status"] == "canceled"


def test_admin_cli_and_reconcile_detects_tampering(start_server, tiny_catalog):
    srv = start_server("sqlite", tiny_catalog, workers="0")
    assert srv.admin("create-user", "carol", "--tokens", "7").returncode == 0
    made = srv.admin("create-key", "carol")
    key = made.stdout.strip()
    assert made.returncode == 0 and key.startswith("fth_") and "not shown again" in made.stderr
    import httpx

    me = httpx.get(srv.url + "/v2/me", headers={"Authorization": f"Bearer {key}"}).json()
    assert me["user"] == "carol" and me["balance"] == 7 and me["webhookSecret"].startswith("whsec_")
    assert "carol" in srv.admin("ledger", "carol").stdout
    assert srv.admin("grant", "nobody", "5").returncode == 2
    assert srv.admin("reconcile").returncode == 0
    with srv.db.transaction() as tx:  # a balance changed behind the ledger's back
        tx.execute("UPDATE balances SET tokens = tokens + 1")
    bad = srv.admin("reconcile")
    assert bad.returncode == 1 and "MISMATCH carol: balance 8, ledger sum 7" in bad.stdout
    revoke = srv.admin("revoke-key", key[:12])
    assert revoke.returncode == 0
    assert httpx.get(srv.url + "/v2/me", headers={"Authorization": f"Bearer {key}"}).status_code == 401


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_idempotency_keys_expire(start_server, tiny_catalog, backend):
    # Keys are remembered for idempotency_hours (24 by default); here about a second.
    srv = start_server(backend, tiny_catalog, idempotency_hours=1 / 3600, lease_seconds=2, rate_per_second="0")
    client = srv.user(tokens=5)
    image, key = png_bytes(48, 48, seed=11), str(uuid.uuid4())
    first = submit(client, image, key=key, resolutionLowerLimit=256)
    assert submit(client, image, key=key, resolutionLowerLimit=256).json()["id"] == first.json()["id"]
    time.sleep(1.5)
    later = submit(client, image, key=key, resolutionLowerLimit=256)
    assert later.status_code == 202 and later.json()["id"] != first.json()["id"]
    assert "idempotent-replayed" not in later.headers
    assert srv.balance(client) == 3  # the expired key's retry is a new, charged request
    # The periodic clean-up removes expired keys from the table.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with srv.db.transaction(readonly=True) as tx:
            left = tx.one("SELECT COUNT(*) AS n FROM idempotency_keys WHERE user_id = ?", (client.user_id,))["n"]
        if left == 0:
            break
        time.sleep(0.2)
    assert left == 0


def test_missing_server_model_is_a_code_without_internals(start_server, tmp_path):
    """The server's own model is missing: the job fails and is refunded with errorCode
    model_unavailable and a message that names no server path and gives no local-model advice."""
    import json

    catalog = tmp_path / "catalog.json"
    missing = tmp_path / "nowhere" / "model.onnx"
    catalog.write_text(json.dumps({"models": {"da2-small": {"path": str(missing)}}}))
    srv = start_server("sqlite", catalog)
    client = srv.user(tokens=3)
    art = submit(client, png_bytes(32, 32), resolutionLowerLimit=256, wait=30).json()
    art = wait_status(client, art["id"], ("failed",))
    assert art["errorCode"] == "model_unavailable" and art["error"].startswith("Refunded:"), art
    assert str(tmp_path) not in art["error"] and "verify" not in art["error"] and ".onnx" not in art["error"]
    assert srv.balance(client) == 3
