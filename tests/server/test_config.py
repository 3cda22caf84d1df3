"""Settings: defaults, then a TOML file, then the environment; bad values are named."""
import pytest

from server.config import load_settings


def test_defaults_toml_then_environment(tmp_path, monkeypatch):
    for name in ("DATABASE_URL", "FATHOM_SERVER_CONFIG", "FATHOM_SERVER_PORT", "FATHOM_SERVER_MODELS"):
        monkeypatch.delenv(name, raising=False)
    plain = load_settings()
    assert (plain.host, plain.port, plain.workers) == ("127.0.0.1", 8000, 1)
    assert plain.database.startswith("sqlite:///") and plain.database.endswith("fathom.db")
    toml = tmp_path / "server.toml"
    toml.write_text('[server]\nport = 9001\ntop_up_url = "https://shop.example/tokens"\n'
                    'models = { small = "da2-small", tiny = "tiny-test" }\n')
    monkeypatch.setenv("FATHOM_SERVER_CONFIG", str(toml))
    s = load_settings()
    assert s.port == 9001 and s.models["tiny"] == "tiny-test" and s.top_up_url.startswith("https://")
    monkeypatch.setenv("FATHOM_SERVER_PORT", "9002")
    monkeypatch.setenv("FATHOM_SERVER_URL_ALLOWLIST", '["10.0.0.0/8"]')
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db/fathom")
    s = load_settings()
    assert s.port == 9002 and s.url_allowlist == ["10.0.0.0/8"] and s.database == "postgresql://u@db/fathom"


def test_bad_settings_are_named(tmp_path, monkeypatch):
    monkeypatch.delenv("FATHOM_SERVER_CONFIG", raising=False)
    monkeypatch.setenv("FATHOM_SERVER_PORT", "eighty")
    with pytest.raises(ValueError, match="FATHOM_SERVER_PORT='eighty'"):
        load_settings()
    monkeypatch.delenv("FATHOM_SERVER_PORT")
    monkeypatch.setenv("FATHOM_SERVER_MODELS", '["small"]')
    with pytest.raises(ValueError, match="JSON object"):
        load_settings()
    monkeypatch.delenv("FATHOM_SERVER_MODELS")
    toml = tmp_path / "bad.toml"
    toml.write_text("prot = 1\n")
    with pytest.raises(ValueError, match="unknown setting"):
        load_settings(str(toml))
