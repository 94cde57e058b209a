"""Settings JSON with defaults under an injected config dir."""

from __future__ import annotations

import json
from pathlib import Path

from desktop.core.paths import AppPaths
from desktop.core.settings import DEFAULTS, Settings


def test_defaults_then_round_trip(tmp_path: Path) -> None:
    paths = AppPaths(tmp_path / "cfg", tmp_path / "data")
    settings = Settings(paths.settings_file)
    assert settings.first_run
    assert settings.get("profile.kind") == "local"
    assert settings.get("chat.max_tokens") == DEFAULTS["chat"]["max_tokens"]
    settings.set("aws.region", "eu-west-1")
    settings.save()
    again = Settings(paths.settings_file)
    assert not again.first_run
    assert again.get("aws.region") == "eu-west-1"
    assert again.get("local.engine") == "echo"


def test_damaged_file_falls_back_to_defaults(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text("{not json")
    settings = Settings(path)
    assert settings.get("profile.kind") == "local"
    assert settings.load_error and "using defaults" in settings.load_error


def test_unknown_keys_are_dropped_and_secrets_have_no_slot(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"aws": {"region": "us-west-2", "refresh_token": "x"}, "junk": 1}))
    settings = Settings(path)
    settings.save()
    saved = json.loads(path.read_text())
    assert saved["aws"]["region"] == "us-west-2"
    assert "refresh_token" not in saved["aws"] and "junk" not in saved


def test_default_paths_come_from_platformdirs() -> None:
    paths = AppPaths.default()
    assert "TinyLlama" in str(paths.config_dir) and "TinyLlama" in str(paths.data_dir)
