"""Choose the profile: Local (this computer) or AWS (API URL, region, user pool, client), and
the theme (Light, Dark or System)."""

from __future__ import annotations

import re
from pathlib import Path

from PySide6.QtWidgets import (
    QApplication,
    QButtonGroup,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from desktop.core.settings import Settings
from desktop.views import theme
from desktop.views.screen_fit import fit_dialog, scroll_body

_POOL = re.compile(r"^[\w-]+_[0-9A-Za-z]+$")
_URL = re.compile(r"^https?://\S+$")
# The access token goes with every request: over https, or plain http only to this computer
# (a test stack, `tinyllama local --cognito-…`).
_API_URL = re.compile(r"^(https://\S+|http://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?(/\S*)?)$")


ENGINES = {
    "echo": "Echo — repeats your message (no model needed)",
    "llamacpp": "A GGUF model on this computer, run by llama.cpp (TinyLlama-1.1B-Chat: Account → Model…)",
    "openai": "An OpenAI-compatible server (vLLM, Ollama, …)",
    "vllm": "vLLM on this computer (TinyLlama runs `vllm serve`)",
}


def local_engine_problems(engine: str, url: str, model: str) -> list[str]:
    """What the chosen local engine still needs, in words."""
    if engine == "openai" and not _URL.match(url):
        return ["The server URL must start with http:// or https:// (e.g. http://127.0.0.1:11434/v1)"]
    if engine == "llamacpp" and not Path(model).expanduser().is_file():
        return ["llama.cpp needs a GGUF model file that exists: download one or pick yours in Account → Model…"]
    if engine == "vllm" and not model:
        return ["vLLM needs a model: a folder with the weights, or a model name it can load"]
    return []


def aws_profile_problems(values: dict[str, str]) -> list[str]:
    """What is missing or malformed in an AWS profile, in words."""
    problems = []
    if not _API_URL.match(values.get("api_url", "")):
        problems.append("API URL must start with https:// (plain http:// only for a stack on this computer)")
    if not values.get("region"):
        problems.append("Region is missing")
    if not _POOL.match(values.get("user_pool_id", "")):
        problems.append("User pool id looks like us-east-1_AbCdEf123")
    if not values.get("client_id"):
        problems.append("App client id is missing")
    return problems


class SettingsDialog(QDialog):
    """Edits the profile part of Settings; saves on OK when it is complete."""

    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Profile")
        self.settings = settings
        self.local = QRadioButton("Local — this computer, no account needed", self)
        self.aws = QRadioButton("AWS — your own stack", self)
        group = QButtonGroup(self)
        group.addButton(self.local)
        group.addButton(self.aws)
        (self.aws if settings.get("profile.kind") == "aws" else self.local).setChecked(True)

        self.fields: dict[str, QLineEdit] = {}
        box = QGroupBox("AWS profile (the deploy wizard fills this in)", self)
        form = QFormLayout(box)
        for key, label in (("api_url", "API URL"), ("region", "Region"),
                           ("user_pool_id", "User pool id"), ("client_id", "App client id"),
                           ("username", "User name")):
            edit = QLineEdit(str(settings.get(f"aws.{key}")), box)
            self.fields[key] = edit
            form.addRow(label, edit)
        self.aws_box = box
        self.aws.toggled.connect(box.setEnabled)
        box.setEnabled(self.aws.isChecked())

        local_box = QGroupBox("Local engine", self)
        local_form = QFormLayout(local_box)
        self.engine = QComboBox(local_box)
        for key, label in ENGINES.items():
            self.engine.addItem(label, key)
        self.engine.setCurrentIndex(max(0, self.engine.findData(settings.get("local.engine"))))
        self.engine_url = QLineEdit(str(settings.get("local.engine_url") or ""), local_box)
        self.engine_url.setPlaceholderText("http://127.0.0.1:11434/v1")
        self._models = {"llamacpp": str(settings.get("local.gguf") or "")}
        self._models["other"] = str(settings.get("local.model") or "")
        self.model = QLineEdit(self._model_for(settings.get("local.engine")), local_box)
        self.model.setPlaceholderText("the server's default model")
        local_form.addRow("Engine", self.engine)
        local_form.addRow("Server URL", self.engine_url)
        local_form.addRow("Model", self.model)
        self.engine.currentIndexChanged.connect(self._engine_switched)
        self._shown_engine = self.engine.currentData()
        self._engine_changed()
        self.local_box = local_box
        self.local.toggled.connect(local_box.setEnabled)
        local_box.setEnabled(self.local.isChecked())
        appearance = QGroupBox("Appearance", self)
        appearance_form = QFormLayout(appearance)
        self.theme = QComboBox(appearance)
        self.theme.setObjectName("theme")
        for key, label in theme.CHOICES.items():
            self.theme.addItem(label, key)
        self.theme.setCurrentIndex(max(0, self.theme.findData(settings.get("appearance.theme"))))
        self.theme.setToolTip("System follows your computer's light or dark setting as it changes.")
        appearance_form.addRow("Theme", self.theme)
        self.problems = QLabel(self)
        theme.styled(self.problems, "color: $error;")
        self.problems.setWordWrap(True)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        self.body, sections = scroll_body(self)  # scrolls where the screen is too small for it
        for widget in (self.local, local_box, self.aws, box, appearance):
            sections.addWidget(widget)
        layout.addWidget(self.body, 1)
        layout.addWidget(self.problems)
        layout.addWidget(QLabel("Changes take effect at once: a new engine, or a switch between Local and AWS.",
                                self))
        layout.addWidget(buttons)

    def setVisible(self, visible: bool) -> None:  # type: ignore[override]
        if visible and not self.isVisible():
            fit_dialog(self, self.body)  # before Qt places it: its buttons stay on screen
        super().setVisible(visible)

    def _model_for(self, engine: object) -> str:
        """llama.cpp's model is a file (local.gguf); the others' a name (local.model)."""
        return self._models["llamacpp" if engine == "llamacpp" else "other"]

    def _engine_switched(self) -> None:
        previous, self._shown_engine = self._shown_engine, self.engine.currentData()
        self._models["llamacpp" if previous == "llamacpp" else "other"] = self.model.text()
        self.model.setText(self._model_for(self._shown_engine))
        self._engine_changed()

    def _engine_changed(self) -> None:
        engine = self.engine.currentData()
        self.engine_url.setEnabled(engine == "openai")
        self.model.setEnabled(engine != "echo")

    def values(self) -> dict[str, str]:
        return {key: edit.text().strip() for key, edit in self.fields.items()}

    def save(self) -> None:
        values = self.values()
        self.problems.clear()
        engine, url, model = self.engine.currentData(), self.engine_url.text().strip(), self.model.text().strip()
        problems = aws_profile_problems(values) if self.aws.isChecked() else local_engine_problems(engine, url, model)
        if problems:
            self.problems.setText("; ".join(problems) + ".")
            return
        self.settings.set("profile.kind", "aws" if self.aws.isChecked() else "local")
        if self.local.isChecked():
            self.settings.set("local.engine", engine)
            self.settings.set("local.engine_url", url)
            self.settings.set("local.gguf" if engine == "llamacpp" else "local.model", model)
        for key, value in values.items():
            self.settings.set(f"aws.{key}", value)
        choice = self.theme.currentData()
        self.settings.set("appearance.theme", choice)
        self.settings.save()
        if choice != theme.current_choice():
            theme.apply(QApplication.instance(), choice)  # at once: every view re-renders on the palette change
        self.accept()
