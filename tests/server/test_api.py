"""The depth server end to end over HTTP: submit, watch, download, list, validate, auth."""

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from engine.exr import read_exr


def png_bytes(w=96, h=64, seed=0, mode="RGB"):
    rng = np.random.default_rng(seed)
    im = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).convert(mode)
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def submit(client, image=None, wait=None, key=None, **params):
    headers = {}
    if wait:
        headers["Prefer"] = f"wait={wait}"
    if key:
        headers["Idempotency-Key"] = key
    data = {k: (json.dumps(v) if isinstance(v, bool) else str(v)) for k, v in params.items()}
    return client.post(
        "/v2/artworks/depth-map",
        files={"image": ("in.png", image or png_bytes(), "image/png")},
        data=data,
        headers=headers,
    )


def test_lifecycle_upload_to_download(server):
    client = server.user(tokens=10)
    r = submit(client, png_bytes(96, 64), resolutionLowerLimit=256)
    assert r.status_code == 202, r.text
    art = r.json()
    assert set(art) >= {"id", "artworkType", "parameters", "duration", "results", "status", "createdAt"}
    assert art["artworkType"] == "depth_map" and art["status"] in ("starting", "processing", "succeeded")
    assert art["parameters"]["resolutionLowerLimit"] == 256 and art["parameters"]["model"] == "small"
    assert r.headers["location"].endswith(f"/v2/artworks/{art['id']}")
    assert server.balance(client) == 9  # resolution 256: 1 token

    done = client.get(f"/v2/artworks/{art['id']}", headers={"Prefer": "wait=30"}).json()
    assert done["status"] == "succeeded", done
    assert [u.rsplit("/", 1)[1] for u in done["results"]] == ["depth.png", "depth.exr"]

    png = client.get(done["results"][0])
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    depth16 = np.asarray(Image.open(io.BytesIO(png.content)))
    assert depth16.shape == (64, 96) and depth16.dtype == np.uint16  # post-resized, 16 bits
    assert depth16.min() == 0 and depth16.max() == 65535  # standard normalisation spans the range
    exr = read_exr(client.get(done["results"][1]).content)
    depth32 = next(iter(exr.channels.values()))
    assert depth32.shape == (64, 96) and depth32.dtype == np.float32
    np.testing.assert_allclose(depth32, depth16 / 65535.0, atol=1 / 65535)

    listing = client.get("/v2/artworks", params={"limit": 10}).json()
    assert listing["total"] == 1 and listing["artworks"][0]["id"] == art["id"]
    me = client.get("/v2/me").json()
    assert me["balance"] == 9 and me["ledger"][0]["kind"] == "charge" and me["ledger"][0]["artworkId"] == art["id"]

    stranger = server.user(tokens=10)  # another caller sees none of it
    for path in (f"/v2/artworks/{art['id']}", done["results"][0].split(server.url)[1]):
        assert stranger.get(path).status_code == 404
    assert stranger.post(f"/v2/artworks/{art['id']}/cancel").status_code == 404
    assert stranger.get("/v2/artworks").json()["total"] == 0


def test_prefer_wait_on_submit_and_data_uri(server):
    client = server.user(tokens=10)
    uri = "data:image/png;base64," + base64.b64encode(png_bytes(40, 50, seed=2)).decode()
    r = client.post(
        "/v2/artworks/depth-map",
        json={
            "imageUrl": uri,
            "resolutionLowerLimit": 512,
            "invertDepth": True,
            "usePostResize": False,
            "normalizationMode": "Raw",
        },
        headers={"Prefer": "wait=30"},
    )
    assert r.status_code == 200, r.text  # finished within the wait: the final artwork
    art = r.json()
    assert art["status"] == "succeeded" and r.headers["preference-applied"] == "wait=30"
    assert art["parameters"]["imageUrl"] is None  # the inline picture is not echoed back
    assert server.balance(client) == 9
    exr = read_exr(client.get(art["results"][1]).content)
    depth = next(iter(exr.channels.values()))
    assert min(depth.shape) == 518 or min(depth.shape) >= 504  # not resized back: the network's size


def test_image_url_fetched_from_allowlisted_host(server, tmp_path):
    import http.server
    import threading

    body = png_bytes(32, 32, seed=3)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        client = server.user(tokens=5)
        url = f"http://127.0.0.1:{httpd.server_address[1]}/picture.png"
        r = client.post(
            "/v2/artworks/depth-map", json={"imageUrl": url, "resolutionLowerLimit": 256}, headers={"Prefer": "wait=30"}
        )
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "succeeded" and r.json()["parameters"]["imageUrl"] == url
    finally:
        httpd.shutdown()


@pytest.mark.parametrize(
    "url",
    [
        "http://10.1.2.3/x.png",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/x.png",
        "file:///etc/passwd",
        "http://192.168.0.1/x.png",
    ],
)
def test_ssrf_urls_refused_and_nothing_charged(server, url):
    client = server.user(tokens=5)
    r = client.post("/v2/artworks/depth-map", json={"imageUrl": url})
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "unsafe_url"
    r = client.post(
        "/v2/artworks/depth-map",
        json={"imageUrl": "data:image/png;base64," + base64.b64encode(png_bytes()).decode(), "webhook": url},
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "webhook"
    assert server.balance(client) == 5


@pytest.mark.parametrize(
    "params, field, words",
    [
        ({"resolutionLowerLimit": 1000}, "resolutionLowerLimit", "multiple of 64"),
        ({"resolutionLowerLimit": 4096}, "resolutionLowerLimit", "less than or equal to 2048"),
        ({"resolutionLowerLimit": 128}, "resolutionLowerLimit", "greater than or equal to 256"),
        ({"model": "giant"}, "model", "not available on this server; available: small"),
        ({"useVersion3": True}, "model", "Depth Anything V3 model None is not available"),
        ({"normalizationMode": "Fancy"}, "normalizationMode", "'Standard', 'V2-Style' or 'Raw'"),
        ({"invertDepth": "maybe"}, "invertDepth", "boolean"),
        ({"colour": "red"}, "colour", "unknown parameter"),
    ],
)
def test_precise_422s(server, params, field, words):
    client = server.user(tokens=5)
    r = submit(client, **params)
    assert r.status_code == 422, r.text
    errors = r.json()["errors"]
    assert any(e["field"] == field and words in e["message"] for e in errors), errors
    assert server.balance(client) == 5


def test_bad_bodies_get_clear_4xx(server):
    client = server.user(tokens=5)
    r = client.post("/v2/artworks/depth-map", content=b'{"imageUrl": ', headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["message"]
    r = client.post("/v2/artworks/depth-map", json={})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "imageUrl"
    r = client.post("/v2/artworks/depth-map", content=b"x", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    r = submit(client, image=b"GIF89a not allowed")
    assert r.status_code == 422 and "PNG, JPEG" in r.json()["message"]
    # A decompression bomb: a tiny file announcing 100k x 100k pixels, refused from its header.
    bomb = io.BytesIO()
    Image.new("1", (1, 1)).save(bomb, "PNG")
    data = bytearray(bomb.getvalue())
    import struct
    import zlib

    data[16:24] = struct.pack(">II", 100_000, 100_000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    r = submit(client, image=bytes(data))
    assert r.status_code == 422 and r.json()["code"] == "too_many_pixels", r.text
    big = b"\x89PNG\r\n\x1a\n" + bytes(21 * 1024 * 1024)
    r = submit(client, image=big)
    assert r.status_code == 413, r.text
    assert server.balance(client) == 5 and client.get("/v2/artworks").json()["total"] == 0


def test_auth_required(server):
    import httpx

    assert httpx.get(server.url + "/v2/me").status_code == 401
    r = httpx.get(server.url + "/v2/me", headers={"Authorization": "Bearer fth_not-a-key"})
    assert r.status_code == 401 and "not valid" in r.json()["message"]
    r = httpx.post(server.url + "/v2/artworks/depth-map", json={})
    assert r.status_code == 401


def test_pricing_and_openapi(server):
    import httpx

    prices = httpx.get(server.url + "/v2/pricing").json()
    small = prices["models"][0]
    assert small["model"] == "small" and {t["resolutionUpTo"]: t["tokens"] for t in small["tokens"]}[1024] == 2
    assert "topUpUrl" in prices
    spec = httpx.get(server.url + "/openapi.json").json()
    assert {
        "/v2/artworks/depth-map",
        "/v2/artworks/{artwork_id}",
        "/v2/artworks",
        "/v2/me",
        "/v2/pricing",
        "/v2/artworks/{artwork_id}/cancel",
    } <= set(spec["paths"])
    body = spec["paths"]["/v2/artworks/depth-map"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(body)


def test_openapi_contract(server):
    import httpx

    spec = httpx.get(server.url + "/openapi.json").json()
    operations = {
        op["operationId"]: (path, method, op) for path, item in spec["paths"].items() for method, op in item.items()
    }
    assert {
        "createDepthMap",
        "getArtwork",
        "listArtworks",
        "cancelArtwork",
        "downloadResult",
        "getAccount",
        "getPricing",
        "healthz",
        "metrics",
    } <= set(operations)
    assert spec["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "Your API key: `Authorization: Bearer fth_...`.",
    }
    error = spec["components"]["schemas"]["ErrorBody"]
    assert {"statusCode", "error", "message", "code"} <= set(error["required"])
    for name, (path, method, op) in operations.items():
        if name in ("healthz", "metrics", "getPricing"):
            continue
        assert op["security"] == [{"HTTPBearer": []}], name
        assert op["responses"]["401"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
        ok = op["responses"].get("200") or op["responses"]["202"]
        assert name == "downloadResult" or "$ref" in str(ok), (name, ok)
    art = spec["components"]["schemas"]["Artwork"]
    assert {"id", "status", "results", "cost", "errorCode"} <= set(art["properties"])


def test_metrics_in_prometheus_format(server):
    import httpx

    client = server.user(tokens=5)
    submit(client, resolutionLowerLimit=256, wait=30)
    text = httpx.get(server.url + "/metrics").text
    assert "# TYPE fathom_artworks gauge" in text and 'fathom_artworks{status="succeeded"}' in text
    assert 'fathom_job_duration_seconds_bucket{le="+Inf"}' in text and "fathom_job_duration_seconds_count" in text
    assert 'fathom_webhook_events{status="pending"}' in text and 'fathom_ledger_entries_total{kind="charge"}' in text
    for line in text.splitlines():
        assert line.startswith("#") or len(line.rsplit(" ", 1)) == 2 and float(line.rsplit(" ", 1)[1]) >= -1e12
