"""The login config file: location, permissions, and both parsers."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from snapkit.errors import ConfigError
from snapkit.remote import config


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "config.toml"
    config.save_config("http://h:1", 'snk_a"b\\c', path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert config.load_config(path) == config.RemoteConfig("http://h:1", 'snk_a"b\\c')


def test_location_honours_snapkit_config_then_xdg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SNAPKIT_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert config.config_path() == tmp_path / "snapkit" / "config.toml"
    monkeypatch.setenv("SNAPKIT_CONFIG", str(tmp_path / "x.toml"))
    assert config.config_path() == tmp_path / "x.toml"


def test_missing_file_is_empty_config(tmp_path: Path) -> None:
    assert config.load_config(tmp_path / "none.toml") == config.RemoteConfig()


def test_line_parser_used_on_python_310(tmp_path: Path) -> None:
    """The fallback parser reads what save_config writes, and refuses junk."""
    text = '# comment\nurl = "http://h:1"  # trailing\ntoken = "snk_\\"q"\n'
    assert config._parse_lines(text, tmp_path) == {
        "url": "http://h:1",
        "token": 'snk_"q',
    }
    with pytest.raises(ConfigError, match="line 1"):
        config._parse_lines("url = http://unquoted\n", tmp_path)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://LocalHost:80/", "http://localhost"),
        ("https://h.example:443/snapkit/", "https://h.example/snapkit"),
        ("http://127.0.0.1:8765", "http://127.0.0.1:8765"),
        ("http://[::1]:8765/", "http://[::1]:8765"),
    ],
)
def test_urls_are_normalised(given: str, expected: str) -> None:
    assert config.normalise_url(given) == expected


@pytest.mark.parametrize(
    "bad", ["ftp://h", "localhost:8765", "http://", "http://u:p@h", "http://h:99999"]
)
def test_unusable_urls_are_config_errors(bad: str) -> None:
    with pytest.raises(ConfigError, match="server URL"):
        config.normalise_url(bad)
