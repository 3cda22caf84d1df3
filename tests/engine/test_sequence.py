"""Depth sequences on real onnxruntime: the oracle network (true inverse depth under a random
per-frame scale and shift, plus noise) judges stabilisation; claims, resume and cancel run on
real files, and two real processes share one folder."""

import multiprocessing
from pathlib import Path

import numpy as np
import pytest

from engine.encode import read_depth, read_metadata
from engine.errors import CancelledError, FathomError
from engine.sequence import run_sequence
from engine.settings import DepthSettings
from tests.oracle_model import build_oracle_model, moving_scene, oracle_picture

H, W = 266, 476  # the network's own size at resolution 266: no resampling blurs the truth
SETTINGS = DepthSettings(resolution=266, normalization="raw")


@pytest.fixture(scope="module")
def oracle(tmp_path_factory):
    return build_oracle_model(tmp_path_factory.mktemp("oracle") / "oracle.onnx")


def shot(count, seed=0, enter=None):
    """(pictures by frame, truths by frame, moving masks by frame, scales, shifts) for frames 1..count."""
    rng = np.random.default_rng(seed)
    truths, masks = moving_scene(count, H, W, enter=enter)
    scales = rng.uniform(0.6, 1.5, count)
    shifts = rng.uniform(-0.3, 0.3, count)
    pictures = {i + 1: oracle_picture(truths[i], scales[i], shifts[i], rng) for i in range(count)}
    return pictures, dict(enumerate(truths, 1)), dict(enumerate(masks, 1)), scales, shifts


def fits_to_truth(result, truths, masks):
    """Per frame, (a, b) of the least-squares fit written = a * truth + b on its static pixels."""
    out = {}
    for frame in result.frames:
        written = read_depth(result.path(frame))
        static = ~masks[frame]
        a, b = np.polyfit(truths[frame][static].ravel(), written[static].ravel(), 1)
        out[frame] = (a, b)
    return out


def test_oracle_answers_scale_truth_plus_shift(oracle):
    from engine.depth import estimate

    pictures, truths, _, scales, shifts = shot(2)
    got = estimate(pictures[1], SETTINGS, oracle).depth
    residual = got - (scales[0] * truths[1] + shifts[0])
    assert abs(residual.mean()) < 1e-4 and 0.003 < residual.std() < 0.03  # noise, around the truth


@pytest.mark.parametrize("smoothing", [0.0, 0.5])
def test_stabilisation_brings_frames_back_to_one_scale(oracle, tmp_path, smoothing):
    pictures, truths, masks, scales, _ = shot(24, seed=1)
    plain = run_sequence(
        list(pictures), pictures.get, tmp_path / "plain", settings=SETTINGS, model_path=oracle, stabilize=False
    )
    fits = fits_to_truth(plain, truths, masks)
    ratios = np.array([fits[f][0] / fits[1][0] for f in plain.frames])
    assert np.abs(ratios - 1).max() > 0.2  # the network's own per-frame scales: the test can fail

    stable = run_sequence(
        list(pictures),
        pictures.get,
        tmp_path / "stable",
        settings=SETTINGS,
        model_path=oracle,
        stabilize=True,
        smoothing=smoothing,
    )
    assert stable.written == list(range(1, 25))
    fits = fits_to_truth(stable, truths, masks)
    a0, b0 = fits[1]
    for frame, (a, b) in fits.items():
        assert a / a0 == pytest.approx(1.0, abs=0.01), frame  # one scale, within 1 %
        assert abs(b - b0) / a0 < 0.01, frame  # and one shift, within 1 % of the truth's unit
    # The first frame keeps the network's scale: the sequence is on frame 1's scale.
    assert a0 == pytest.approx(scales[0], rel=0.01)


def test_flicker_falls_when_a_near_object_enters(oracle, tmp_path):
    pictures, *_ = shot(16, seed=2, enter=6)
    settings = DepthSettings(resolution=266)  # standard: each frame alone is min-max scaled
    result = run_sequence(
        list(pictures), pictures.get, tmp_path / "s", settings=settings, model_path=oracle, smoothing=0.5
    )
    assert result.flicker_before is not None and result.flicker_after is not None
    assert result.flicker_after < 0.5 * result.flicker_before
    depth = read_depth(result.path(16))
    assert 0.0 <= depth.min() and depth.max() <= 1.0


def test_resume_skips_done_frames_and_redo_does_them_again(oracle, tmp_path):
    pictures, *_ = shot(6, seed=3)
    calls = []

    def read(frame):
        calls.append(frame)
        return pictures[frame]

    first = run_sequence([1, 2, 3], read, tmp_path, settings=SETTINGS, model_path=oracle)
    assert first.written == [1, 2, 3]
    names = sorted(p.name for p in tmp_path.iterdir() if p.is_file())
    assert names == ["depth_0001.exr", "depth_0002.exr", "depth_0003.exr"]
    calls.clear()
    again = run_sequence(range(1, 7), read, tmp_path, settings=SETTINGS, model_path=oracle)
    assert again.skipped == [1, 2, 3] and again.written == [4, 5, 6] and calls == [4, 5, 6]
    # Frame 4 continued from the saved alignment of 1..3: the same scale as a run without a break.
    whole = run_sequence(range(1, 7), pictures.get, tmp_path / "whole", settings=SETTINGS, model_path=oracle)
    np.testing.assert_allclose(read_depth(again.path(4)), read_depth(whole.path(4)), rtol=1e-4, atol=1e-4)
    calls.clear()
    other = run_sequence(
        [1, 2], read, tmp_path, settings=DepthSettings(resolution=266, normalization="standard"), model_path=oracle
    )
    assert other.written == [1, 2] and calls == [1, 2]  # other settings: done again, in the same files
    calls.clear()
    redo = run_sequence([1, 2], read, tmp_path, settings=SETTINGS, model_path=oracle, redo=True)
    assert redo.written == [1, 2] and redo.skipped == []


def test_cancel_between_frames_keeps_finished_frames(oracle, tmp_path):
    pictures, *_ = shot(5, seed=4)
    seen = []
    with pytest.raises(CancelledError, match="frames 1-2 are in") as caught:
        run_sequence(
            range(1, 6),
            pictures.get,
            tmp_path,
            settings=SETTINGS,
            model_path=oracle,
            batch_size=1,
            on_frame=lambda f, p: seen.append(f),
            cancel=lambda: len(seen) >= 2,
        )
    assert caught.value.result.written == [1, 2]
    assert sorted(p.name for p in tmp_path.glob("*.exr")) == ["depth_0001.exr", "depth_0002.exr"]
    assert not list(tmp_path.glob(".fathom/*.claim")) and not list(tmp_path.glob(".*.tmp"))
    rest = run_sequence(range(1, 6), pictures.get, tmp_path, settings=SETTINGS, model_path=oracle)
    assert rest.skipped == [1, 2] and rest.written == [3, 4, 5]


def test_progress_says_frame_and_time_left(oracle, tmp_path):
    pictures, *_ = shot(4, seed=5)
    messages = []
    run_sequence(
        range(1, 5),
        pictures.get,
        tmp_path,
        settings=SETTINGS,
        model_path=oracle,
        batch_size=1,
        progress=lambda f, m: messages.append((f, m)),
    )
    fractions = [f for f, _ in messages]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any("Frame 3 (3 of 4)" in m and "left" in m for _, m in messages)


def test_a_file_fathom_did_not_write_is_never_replaced(oracle, tmp_path):
    pictures, *_ = shot(2, seed=6)
    (tmp_path / "depth_0002.exr").write_bytes(b"the user's own file")
    with pytest.raises(FathomError, match="not written by Fathom"):
        run_sequence([1, 2], pictures.get, tmp_path, settings=SETTINGS, model_path=oracle, batch_size=1)
    assert (tmp_path / "depth_0002.exr").read_bytes() == b"the user's own file"
    assert read_metadata(tmp_path / "depth_0001.exr")["frame"] == "1"


def _farm_node(model, folder, frames, seed, queue):
    pictures, *_ = shot(12, seed=seed)
    result = run_sequence(frames, pictures.get, folder, settings=SETTINGS, model_path=model, batch_size=1)
    queue.put((result.written, result.skipped, result.by_others))


def test_two_processes_with_overlapping_ranges_write_each_frame_once(oracle, tmp_path):
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    nodes = [
        ctx.Process(target=_farm_node, args=(str(oracle), str(tmp_path), frames, 7, queue))
        for frames in (list(range(1, 10)), list(range(4, 13)))
    ]
    for node in nodes:
        node.start()
    answers = [queue.get(timeout=300) for _ in nodes]
    for node in nodes:
        node.join(60)
        assert node.exitcode == 0
    written = [f for w, _, _ in answers for f in w]
    assert sorted(written) == list(range(1, 13))  # every frame, each written by one process only
    for w, skipped, others in answers:
        assert set(w).isdisjoint(others)
    assert sorted(Path(p).name for p in tmp_path.glob("*.exr")) == [f"depth_{f:04d}.exr" for f in range(1, 13)]
    assert not list(tmp_path.glob(".fathom/*.claim"))


def test_exact_depth_keeps_one_range_without_stabilising(tmp_path):
    """Scene Z's way: inverse distances as they are, every frame mapped with the first frame's range."""
    truths, _ = moving_scene(4, 40, 60, enter=2)
    frames = {i + 1: t * 2.0 for i, t in enumerate(truths)}  # a depth_fn that returns them unchanged
    result = run_sequence(
        list(frames),
        frames.get,
        tmp_path,
        depth_fn=lambda pictures, _: list(pictures),
        settings=DepthSettings(),
        stabilize=False,
        one_range=True,
    )
    lo, hi = float(frames[1].min()), float(frames[1].max())
    assert result.value_range == (lo, hi)
    for frame, inverse in frames.items():
        expected = np.clip((inverse - lo) / (hi - lo), 0, 1)
        np.testing.assert_allclose(read_depth(result.path(frame)), expected, atol=1e-6)
    assert read_depth(result.path(3)).max() == 1.0  # the disc that entered is clipped at the first frame's near end
