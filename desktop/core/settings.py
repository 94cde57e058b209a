"""Settings that are not secrets, as JSON under the config dir, with defaults.

Only keys named in DEFAULTS are kept; a damaged file falls back to the defaults rather
than stopping the app from starting (the file is rewritten on the next save).
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

DEFAULTS: dict[str, dict[str, Any]] = {
    "profile": {"kind": "local"},
    # engine: echo | llamacpp (a GGUF file, run by llama.cpp) | openai (any OpenAI-compatible URL:
    # vLLM, Ollama, ...) | vllm (runs `vllm serve model`)
    # engine llamacpp runs the GGUF file `gguf` (a downloaded catalog model or the person's own);
    # models_dir "" is the data folder's models/; model_offered: the first-run offer was shown
    "local": {"engine": "echo", "port": 0, "engine_url": "", "model": "",
              "gguf": "", "models_dir": "", "model_offered": False},
    "aws": {
        "api_url": "",
        "region": "us-east-1",
        "user_pool_id": "",
        "client_id": "",
        "username": "",
        # written by the deploy wizard; the cost panel reads them
        "aws_profile": "",
        "stack_name": "",
        "instance_id": "",
        "data_bucket": "",
        "budget_name": "",
        "warning_usd": 0.0,
        "hard_cap_usd": 0.0,
    },
    # send_key: "enter" (Shift+Enter makes a new line) | "ctrl+enter" (Enter makes a new line)
    "chat": {"system_prompt": "", "temperature": 0.7, "max_tokens": 512, "model": "", "send_key": "enter"},
    # theme: "system" (the platform's light or dark, followed as it changes) | "light" | "dark";
    # system: the platform's "light" or "dark" at the last launch ("" before the first)
    "appearance": {"theme": "system", "system": ""},
    # geometry and splitter: Qt's saveGeometry()/saveState() bytes, base64 ("" = never saved)
    "window": {"last_conversation": 0, "geometry": "", "splitter": ""},
}


class Settings:
    """Dotted-key access (`settings.get("aws.region")`) to a JSON file with defaults."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._data = copy.deepcopy(DEFAULTS)
        self.load_error: str | None = None
        self._load()

    def _load(self) -> None:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            self.load_error = f"Settings file {self.path} could not be read ({exc}); using defaults."
            return
        if not isinstance(raw, dict):
            return
        for section, values in DEFAULTS.items():
            stored = raw.get(section)
            if isinstance(stored, dict):
                for key in values:
                    if key in stored:
                        self._data[section][key] = stored[key]

    @property
    def first_run(self) -> bool:
        return not self.path.exists()

    def get(self, key: str) -> Any:
        section, name = key.split(".", 1)
        return self._data[section][name]

    def set(self, key: str, value: Any) -> None:
        section, name = key.split(".", 1)
        if name not in DEFAULTS[section]:
            raise KeyError(key)
        self._data[section][name] = value

    def section(self, name: str) -> dict[str, Any]:
        return dict(self._data[name])

    def save(self) -> None:
        """Write atomically, so a crash never leaves half a file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._data, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.path)
