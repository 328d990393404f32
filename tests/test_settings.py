"""Bad settings give one clear message naming the key, where it came from and what was
expected, and `mes` exits 2 without a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.config_errors import ConfigError
from core.settings import load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("MES_") or key == "DATABASE_URL":
            monkeypatch.delenv(key)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mes.toml"
    path.write_text(text)
    return path


def test_file_and_env_settings_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[database]\nurl = "postgres://owner@127.0.0.1:5999/mes"\n'
                           '[log]\nformat = "text"\n')
    monkeypatch.setenv("MES_LOG__LEVEL", "debug")
    s = load_settings(path)
    assert s.database.url == "postgresql://owner@127.0.0.1:5999/mes"
    assert s.database.application_url() == "postgresql://mes_app@127.0.0.1:5999/mes"
    assert (s.log.level, s.log.format) == ("debug", "text")


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[log]\nlevel = "error"\n')
    monkeypatch.setenv("MES_LOG__LEVEL", "info")
    assert load_settings(path).log.level == "info"


def test_database_url_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://u:p%40ss@127.0.0.1/mes")
    s = load_settings()
    assert s.database.url == "postgresql://u:p%40ss@127.0.0.1/mes"


@pytest.mark.parametrize(("text", "expected"), [
    ('[log]\nlevel = "loud"\n', "log.level: Input should be 'debug', 'info', 'warning' or "
                                "'error' (got 'loud') [from {file}]"),
    ('[database]\nurl = "mysql://x/y"\n', "database.url: expected a postgresql:// URL, not "
                                          "mysql:// (got 'mysql://x/y') [from {file}]"),
    ('[database]\npool_max_size = "many"\n', "database.pool_max_size: Input should be a valid "
                                             "integer"),
    ('[database]\nurl = "postgresql://127.0.0.1:5432"\n', "names no database"),
    ('[databse]\nurl = "x"\n', "databse: Extra inputs are not permitted"),
    ("[log\n", "not valid TOML"),
], ids=["log-level-unknown", "database-url-not-postgresql", "pool-size-not-a-number",
        "database-url-without-name", "section-misspelt", "not-toml"])
def test_bad_file_values_name_key_and_file(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_settings(path)
    message = str(e.value)
    assert f"config error in {path}" in message
    assert expected.format(file=path) in message


def test_bad_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    monkeypatch.setenv("MES_DATABASE__POOL_MIN_SIZE", "-3")
    with pytest.raises(ConfigError, match="MES_DATABASE__POOL_MIN_SIZE"):
        load_settings(write(tmp_path, ""))
    monkeypatch.delenv("MES_DATABASE__POOL_MIN_SIZE")
    monkeypatch.setenv("DATABASE_URL", "http://example")
    with pytest.raises(ConfigError, match="from environment variable DATABASE_URL"):
        load_settings()


def test_missing_config_file() -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_settings("/nonexistent/mes.toml")


def test_cli_exits_2_with_message_not_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, '[log]\nlevel = "loud"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("MES_")}
    out = subprocess.run([sys.executable, "-m", "mes.cli", "--config", str(path), "db",
                          "status"], capture_output=True, text=True, env=env, timeout=60,
                         check=False)
    assert out.returncode == 2
    assert f"config error in {path}" in out.stderr
    assert "log.level" in out.stderr
    assert "Traceback" not in out.stderr


def test_errors_never_quote_a_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[database]\napp_password = "s3cret"\npool_max_size = "x"\n')
    with pytest.raises(ConfigError) as e:
        load_settings(path)
    assert "s3cret" not in str(e.value)
    from ingest.settings import IngestSettings

    monkeypatch.setenv("MES_MQTT__PASSWORD", "s3cret")
    with pytest.raises(ConfigError) as e2:
        load_settings(write(tmp_path, ""), IngestSettings)
    assert "password given without username" in str(e2.value)
    assert "s3cret" not in str(e2.value) and "***" in str(e2.value)
