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
    toml.write_text(
        '[server]\nport = 9001\ntop_up_url = "https://shop.example/tokens"\n'
        'models = { small = "da2-small", tiny = "tiny-test" }\n'
    )
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
    with pytest.raises(ValueError, match="FATHOM_SERVER_PORT"):
        load_settings()
    monkeypatch.delenv("FATHOM_SERVER_PORT")
    monkeypatch.setenv("FATHOM_SERVER_MODELS", '["small"]')
    with pytest.raises(ValueError, match="models .FATHOM_SERVER_MODELS."):
        load_settings()
    monkeypatch.delenv("FATHOM_SERVER_MODELS")
    toml = tmp_path / "bad.toml"
    toml.write_text("prot = 1\n")
    with pytest.raises(ValueError, match="unknown setting"):
        load_settings(str(toml))


@pytest.mark.parametrize(
    "name, value, words",
    [
        ("WORKERS", "-1", "workers (FATHOM_SERVER_WORKERS)='-1': Input should be greater than or equal to 0"),
        ("LEASE_SECONDS", "0", "lease_seconds (FATHOM_SERVER_LEASE_SECONDS)='0': Input should be greater than 0"),
        ("PRICES", '{"small": "one"}', "prices (FATHOM_SERVER_PRICES)"),
        ("STORAGE", "s3", "storage (FATHOM_SERVER_STORAGE)='s3'"),
        ("AUTO_MIGRATE", "perhaps", "auto_migrate (FATHOM_SERVER_AUTO_MIGRATE)"),
        ("DEFAULT_MODEL", "large", "default_model 'large' is not one of models"),
    ],
)
def test_each_bad_setting_is_refused_by_name(monkeypatch, name, value, words):
    monkeypatch.delenv("FATHOM_SERVER_CONFIG", raising=False)
    monkeypatch.setenv("FATHOM_SERVER_" + name, value)
    with pytest.raises(ValueError) as info:
        load_settings()
    assert words in str(info.value), str(info.value)


def test_a_bad_setting_stops_the_server_with_its_name(tmp_path):
    import subprocess
    import sys

    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("FATHOM_SERVER_")}
    env.update(FATHOM_SERVER_WORKERS="-2", FATHOM_SERVER_DATA_DIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-m", "server"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "FATHOM_SERVER_WORKERS" in done.stderr and "Traceback" not in done.stderr
