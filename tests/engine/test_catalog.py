"""The model catalogue: pinned built-ins, FATHOM_CATALOG overrides, errors and licence notices."""

import hashlib
import json

import pytest

from engine.catalog import CatalogError, catalog, get_model, license_notice
from engine.errors import ModelError, UnknownModelError

REVISION = "4472b7362082ad9968fee890ca0f1e5aca36b93d"


@pytest.fixture(autouse=True)
def no_override(monkeypatch):
    monkeypatch.delenv("FATHOM_CATALOG", raising=False)


def write_catalog(tmp_path, monkeypatch, data, name="catalog.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    monkeypatch.setenv("FATHOM_CATALOG", str(path))
    return path


def test_builtins_are_pinned_with_the_published_sizes_and_hashes():
    small, fp16 = get_model("da2-small"), get_model("da2-small-fp16")
    assert (small.size, small.sha256) == (
        99_060_839,
        "afb6a5c28f3b6bf1618c6e43f02073ef9dfdc70e937502d51603e57b0a1df10c",
    )
    assert (fp16.size, fp16.sha256) == (49_642_442, "2df6223f206b5164e21f664ace61dabeb9bb6a49b8b5a3e00510b4807d0f5b04")
    base = f"https://huggingface.co/onnx-community/depth-anything-v2-small/resolve/{REVISION}/onnx/"
    assert small.url == base + "model.onnx" and fp16.url == base + "model_fp16.onnx"
    assert (small.precision, fp16.precision) == ("fp32", "fp16")
    for info in (small, fp16):
        assert info.license == "Apache-2.0" and info.commercial_use and info.path is None
    assert small.filename != fp16.filename  # both are model*.onnx upstream; they share one folder here


def test_unknown_id_lists_the_known_ones():
    with pytest.raises(UnknownModelError) as err:
        get_model("da2-huge")
    message = str(err.value)
    assert "'da2-huge'" in message and "da2-small, da2-small-fp16" in message
    assert isinstance(err.value, KeyError)  # callers doing dict-style lookups still work


def test_override_adds_a_local_model_relative_to_the_catalogue_file(tmp_path, monkeypatch):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "mine.onnx").write_bytes(b"onnx")
    write_catalog(tmp_path, monkeypatch, {"models": {"mine": {"path": "models/mine.onnx", "name": "Mine"}}})
    info = get_model("mine")
    assert info.path == tmp_path / "models" / "mine.onnx" and info.is_local
    assert info.url is None and info.sha256 is None and info.filename == "mine.onnx"
    assert (info.license, info.commercial_use) == ("unknown", False)  # nothing claimed, nothing assumed
    assert set(catalog()) == {"da2-small", "da2-small-fp16", "mine"}


def test_override_replacing_a_builtin_file_forgets_its_hash_but_keeps_its_licence(tmp_path, monkeypatch):
    data = b"a local copy"
    digest = hashlib.sha256(data).hexdigest()
    write_catalog(
        tmp_path,
        monkeypatch,
        {
            "models": {
                "da2-small": {"path": str(tmp_path / "m.onnx")},
                "da2-small-fp16": {"path": "x.onnx", "sha256": digest.upper()},
            }
        },
    )
    small = get_model("da2-small")
    assert small.path == tmp_path / "m.onnx" and small.sha256 is None and small.size is None and small.url is None
    assert (small.name, small.license, small.commercial_use) == ("Depth Anything V2 Small", "Apache-2.0", True)
    assert get_model("da2-small-fp16").sha256 == digest  # hex is normalised to lower case


def test_override_of_metadata_only_keeps_the_pinned_file(tmp_path, monkeypatch):
    write_catalog(tmp_path, monkeypatch, {"models": [{"id": "da2-small", "description": "studio default"}]})
    small = get_model("da2-small")
    assert small.description == "studio default" and small.size == 99_060_839 and small.url.endswith("model.onnx")


def test_a_non_commercial_model_is_flagged(tmp_path, monkeypatch):
    write_catalog(
        tmp_path,
        monkeypatch,
        {
            "models": {
                "da2-base": {
                    "name": "Depth Anything V2 Base",
                    "url": "https://example.invalid/base.onnx",
                    "size": 10,
                    "sha256": "0" * 64,
                    "license": "CC-BY-NC-4.0",
                }
            }
        },
    )
    base = get_model("da2-base")
    assert base.commercial_use is False and base.filename == "da2-base.onnx"
    notice = license_notice(base)
    assert "NON-COMMERCIAL" in notice and "CC-BY-NC-4.0" in notice
    assert "commercial use allowed" in license_notice(get_model("da2-small"))
    assert "NON-COMMERCIAL" not in license_notice(get_model("da2-small"))


@pytest.mark.parametrize(
    "entry, expected",
    [
        ({"url": "https://example.invalid/m.onnx", "size": 5}, "sha256"),
        ({"url": "https://example.invalid/m.onnx", "sha256": "abc"}, "64 hexadecimal"),
        ({"path": "m.onnx", "url": "https://example.invalid/m.onnx", "sha256": "0" * 64}, "exactly one"),
        ({"name": "no file"}, "exactly one"),
        ({"path": "m.onnx", "sizes": 3}, "unknown field(s) sizes"),
        ({"url": "ftp://example.invalid/m.onnx", "sha256": "0" * 64}, "https://"),
        ({"url": "https://example.invalid/m", "sha256": "0" * 64, "filename": "../evil.onnx"}, "plain file name"),
        ({"path": "m.onnx", "license": "CC-BY-NC-4.0", "commercial_use": True}, "non-commercial"),
        ({"path": "m.onnx", "precision": "int8"}, "precision"),
        ({"path": "m.onnx", "size": -1}, "size"),
    ],
)
def test_bad_override_entries_say_what_is_wrong(tmp_path, monkeypatch, entry, expected):
    write_catalog(tmp_path, monkeypatch, {"models": {"new": entry}})
    with pytest.raises(CatalogError) as err:
        catalog()
    assert expected in str(err.value) and "'new'" in str(err.value)
    assert isinstance(err.value, ModelError)


def test_unreadable_override_files_name_the_problem(tmp_path, monkeypatch):
    write_catalog(tmp_path, monkeypatch, '{"models": {"x": }')
    with pytest.raises(CatalogError, match=r"not valid JSON.*line 1"):
        get_model("da2-small")
    write_catalog(tmp_path, monkeypatch, '["da2-small"]')
    with pytest.raises(CatalogError, match='needs a "models" object'):
        catalog()
    monkeypatch.setenv("FATHOM_CATALOG", str(tmp_path / "nowhere.json"))
    with pytest.raises(CatalogError, match="does not exist"):
        catalog()
