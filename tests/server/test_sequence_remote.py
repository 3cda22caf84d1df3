"""Depth sequences on the real depth server (tests/server/conftest.py): one job per frame, the
total price checked before anything is sent, and a sequence whose Blender crashed mid-way
finished by the next run without paying any frame twice."""

import json
import multiprocessing
import os

import numpy as np
import pytest

from engine import remote
from engine.encode import read_depth
from engine.sequence import run_sequence
from engine.sequence_remote import RemoteFrames, check_sequence_affordable, quote_sequence
from engine.settings import DepthSettings

LOW = DepthSettings(resolution=256)  # 1 token a frame with the default price list
TOP_UP = "https://tokens.example/buy"


def frame_picture(frame):
    rng = np.random.default_rng(frame)
    y, x = np.mgrid[0:64, 0:96] / 96
    rgb = np.stack([x, y, 0.5 + 0.1 * np.sin(x * 9 + frame)], axis=2) + rng.normal(0, 0.01, (64, 96, 3))
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def test_the_price_of_a_sequence_is_checked_before_anything_is_sent(tiny_catalog, start_server):
    server = start_server("sqlite", tiny_catalog, top_up_url=TOP_UP, rate_per_second="0")
    user = server.user(tokens=3)
    client = remote.RemoteClient(server.url, user.key)
    quote = quote_sequence(client, LOW, 5)
    assert quote == {"cost": 5, "per_frame": 1, "frames": 5, "balance": 3, "shortfall": 2, "top_up_url": TOP_UP}
    with pytest.raises(remote.InsufficientTokensError, match="Get tokens · 2 more: these 5 frames cost 5") as err:
        check_sequence_affordable(quote)
    assert err.value.shortfall == 2 and TOP_UP in str(err.value)
    assert server.balance(user) == 3 and client.list()["total"] == 0
    check_sequence_affordable(quote_sequence(client, LOW, 3))  # affordable: no error


def _crash_after_second_job(url, key, folder):
    client = remote.RemoteClient(url, key)

    def on_job(frame, job):
        if frame == 2:
            os._exit(17)  # Blender crashing right after the server accepted (and charged) frame 2

    frames = RemoteFrames(client, LOW, on_job=on_job)
    run_sequence([1, 2, 3], frame_picture, folder, depth_fn=frames, settings=LOW, batch_size=1)


def test_a_crashed_sequence_is_finished_without_paying_twice(server, tmp_path):
    user = server.user(tokens=10)
    child = multiprocessing.get_context("spawn").Process(
        target=_crash_after_second_job, args=(server.url, user.key, str(tmp_path))
    )
    child.start()
    child.join(120)
    assert child.exitcode == 17
    assert sorted(p.name for p in tmp_path.glob("*.exr")) == ["depth_0001.exr"]
    record = json.loads((tmp_path / ".fathom" / "0002.job").read_text())
    assert record["job"] and record["idempotency_key"]
    assert server.balance(user) == 8  # frames 1 and 2 were paid

    client = remote.RemoteClient(server.url, user.key)
    frames = RemoteFrames(client, LOW)
    result = run_sequence([1, 2, 3], frame_picture, tmp_path, depth_fn=frames, settings=LOW, batch_size=1)
    assert result.skipped == [1] and result.written == [2, 3]
    assert frames.recovered == [2] and frames.submitted == [3]
    assert server.balance(user) == 7  # three frames, three tokens
    assert not list((tmp_path / ".fathom").glob("*.job"))
    # The server's raw inverse depth, stabilised and mapped to 0..1 like a local sequence.
    depth = read_depth(result.path(3))
    assert depth.shape == (64, 96) and 0.0 <= depth.min() and depth.max() <= 1.0
    assert client.list()["total"] == 3
