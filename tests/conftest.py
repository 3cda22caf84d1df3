"""Shared fixtures: where the stand-in model lives, tiny models built on demand."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_MODELS = Path(os.environ.get("FATHOM_SHARED_MODELS", ROOT.parent / "shared" / "models"))
STANDIN = SHARED_MODELS / "depth-anything-v2-small-standin.onnx"
STANDIN_SHA256 = "fa93b2cf4691ffe29361f3f9fdcdc2ef3f2fdfd1434c3d243058460870f12191"


@pytest.fixture(scope="session")
def standin_model():
    """The full-size Depth Anything V2 Small stand-in (random weights) from ../shared/models."""
    if not STANDIN.is_file():
        pytest.fail(f"The stand-in model is missing: expected {STANDIN} (set FATHOM_SHARED_MODELS).")
    return STANDIN


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    from tests.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny.onnx")
