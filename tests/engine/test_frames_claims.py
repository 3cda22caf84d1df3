"""Frame ranges, frame file names, per-frame claims and the sequence manifest, on a real file system."""

import json
import multiprocessing
import os
import time

import pytest

from engine.claims import Claims, Manifest
from engine.errors import InvalidSettingsError
from engine.frames import as_frames, describe, frame_name, parse_frames


@pytest.mark.parametrize(
    "spec,expected",
    [
        ("1-5", [1, 2, 3, 4, 5]),
        ("1-10:3", [1, 4, 7, 10]),
        ("0-9:4", [0, 4, 8]),
        ("7", [7]),
        ("1-3, 2-4,10", [1, 2, 3, 4, 10]),
        ("20-30:5,1", [1, 20, 25, 30]),
    ],
)
def test_parse_frames(spec, expected):
    assert parse_frames(spec) == expected


@pytest.mark.parametrize(
    "spec,words",
    [
        ("", "No frames"),
        ("5-1", "ends before it starts"),
        ("1-10:0", "step must be 1 or more"),
        ("a-b", "not understood"),
        ("-3", "not understood"),
        ("1-2000000", "frames go from 0"),
        ("1-5:", "not understood"),
    ],
)
def test_parse_frames_errors_say_what_is_wrong(spec, words):
    with pytest.raises(InvalidSettingsError, match=words):
        parse_frames(spec)


def test_api_frame_specs():
    assert as_frames((1, 5)) == [1, 2, 3, 4, 5]
    assert as_frames((1, 9, 4)) == [1, 5, 9]
    assert as_frames([3, 1, 3]) == [1, 3]
    assert as_frames(range(2, 5)) == [2, 3, 4]
    assert as_frames(12) == [12]
    assert as_frames("1-3") == [1, 2, 3]
    with pytest.raises(InvalidSettingsError, match="not understood"):
        as_frames(1.5)
    with pytest.raises(InvalidSettingsError, match="empty"):
        as_frames([])


def test_frame_names_and_descriptions():
    assert frame_name("depth", 7, ".exr") == "depth_0007.exr"
    assert frame_name("depth", 12345, ".png") == "depth_12345.png"
    assert describe([1, 2, 3, 5, 7, 8]) == "1-3, 5, 7-8"


def test_a_claimed_frame_cannot_be_claimed_again_until_released(tmp_path):
    a, b = Claims(tmp_path, "k"), Claims(tmp_path, "k")
    assert a.claim(1)
    assert not b.claim(1)
    a.release(1)
    assert b.claim(1)
    b.release(1)
    assert not list((tmp_path / ".fathom").glob("*.claim"))


def test_done_records_need_the_same_key_and_the_file(tmp_path):
    a = Claims(tmp_path, "k1")
    (tmp_path / "d_0001.exr").write_bytes(b"x")
    a.mark_done(1, "d_0001.exr")
    assert a.is_done(1)
    assert not Claims(tmp_path, "k2").is_done(1)  # other settings: to be redone
    (tmp_path / "d_0001.exr").unlink()
    assert not a.is_done(1)  # the file went: to be redone


def test_a_stale_claim_is_taken_over_and_a_live_one_is_not(tmp_path):
    a = Claims(tmp_path, "k", stale_after=5)
    b = Claims(tmp_path, "k", stale_after=5)
    assert a.claim(3)
    assert not b.claim(3)
    old = time.time() - 60
    os.utime(a._claim_path(3), (old, old))  # a crashed: no heartbeat for a minute
    assert b.claim(3)
    assert json.loads(b._claim_path(3).read_text())["token"] == b.token
    a.heartbeat()  # a's heartbeat does not revive a claim it lost...
    a.release(3)  # ...and its release leaves b's claim alone
    assert b._claim_path(3).exists()


def test_a_claim_of_a_dead_process_on_this_machine_is_stale_at_once(tmp_path):
    child = multiprocessing.get_context("spawn").Process(target=_claim_and_exit, args=(str(tmp_path),))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert Claims(tmp_path, "k").claim(9)


def _claim_and_exit(folder):
    assert Claims(folder, "k").claim(9)  # and never released


def test_manifest_first_writer_wins_and_new_settings_reset_the_range(tmp_path):
    m = Manifest(tmp_path)
    assert m.start({"key": "a"})["key"] == "a"
    assert m.fix_range({"lo": 0, "hi": 1})["hi"] == 1
    assert m.fix_range({"lo": 5, "hi": 9})["hi"] == 1  # already fixed by the first frame
    assert m.start({"key": "a"})["key"] == "a"
    assert m.fixed_range() == {"lo": 0, "hi": 1}
    m.start({"key": "b"})
    assert m.fixed_range() is None


def test_numbered_files_of_an_image_sequence(tmp_path):
    from engine.frames import numbered_files

    for name in (
        "shot_0001.png",
        "shot_0002.png",
        "shot_0010.png",
        "shot_0003.jpg",
        "other_0001.png",
        "shot_01.png",
        "shot_12345.png",
    ):
        (tmp_path / name).write_bytes(b"")
    found = numbered_files(tmp_path / "shot_0002.png")
    assert {f: p.name for f, p in found.items()} == {
        1: "shot_0001.png",
        2: "shot_0002.png",
        10: "shot_0010.png",
        12345: "shot_12345.png",
    }
    with pytest.raises(InvalidSettingsError, match="no frame number"):
        numbered_files(tmp_path / "plate.png")
    with pytest.raises(InvalidSettingsError, match="No files of the image sequence missing_####.png"):
        numbered_files(tmp_path / "missing_0001.png")
