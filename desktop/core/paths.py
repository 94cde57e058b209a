"""Where the app keeps its files. Injected everywhere so tests never touch the real home."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

APP_NAME = "TinyLlama"


class AppPaths(NamedTuple):
    """The config dir (settings.json) and the data dir (history.sqlite3)."""

    config_dir: Path
    data_dir: Path

    @classmethod
    def default(cls) -> AppPaths:
        """The platform's own places, from platformdirs."""
        import platformdirs

        return cls(
            Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)),
            Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)),
        )

    @property
    def settings_file(self) -> Path:
        return self.config_dir / "settings.json"

    @property
    def history_db(self) -> Path:
        return self.data_dir / "history.sqlite3"
