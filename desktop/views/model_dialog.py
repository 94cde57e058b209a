"""Choose the Local profile's model: download TinyLlama-1.1B-Chat, use a GGUF file you
have, or use any OpenAI-compatible server (its API key in the keyring).

Downloads and connection tests run on the Runner's threads; progress comes back through
a signal, so widgets are only touched on the UI thread. Choosing saves the settings and
emits `model_chosen`; the app then restarts the local service with the new engine.
"""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import Signal, Slot
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from desktop.core.errors import AppError
from desktop.core.model_catalog import DEFAULT_MODEL, CatalogModel, human_duration, human_size
from desktop.core.settings import Settings
from desktop.qt.runner import Runner
from desktop.services.credentials import ENGINE_API_KEY, CredentialStore
from desktop.services.model_download import DownloadCancelled, ModelDownloader, Progress
from desktop.services.server_probe import list_models
from desktop.views import theme
from desktop.views.screen_fit import fit_dialog, scroll_body

_ERROR_STYLE = "color: $error;"


def models_dir(settings: Settings, data_dir: Path) -> Path:
    """Where downloaded models live: the settings' folder, or the data folder's models/."""
    chosen = str(settings.get("local.models_dir") or "")
    return Path(chosen) if chosen else data_dir / "models"


class ModelDialog(QDialog):
    """Three ways to a real model; `model_chosen` fires once the settings hold the choice."""

    model_chosen = Signal()
    _progressed = Signal(object)  # emitted on the download's thread, delivered on the UI thread

    def __init__(self, settings: Settings, data_dir: Path, runner: Runner, credentials: CredentialStore,
                 parent: QWidget | None = None, model: CatalogModel = DEFAULT_MODEL,
                 downloader: ModelDownloader | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Model")
        self.settings, self.data_dir, self.runner, self.credentials = settings, data_dir, runner, credentials
        self.catalog_model = model
        self.downloader = downloader or ModelDownloader(models_dir(settings, data_dir))
        self.cancel_event = threading.Event()
        self.downloading = False
        self._progressed.connect(self._show_progress)

        self.download_choice = QRadioButton(f"Download {model.title} ({human_size(model.size_bytes)})", self)
        self.file_choice = QRadioButton("Use a GGUF file I already have", self)
        self.server_choice = QRadioButton("Use any OpenAI-compatible server (Ollama, LM Studio, a hosted API)", self)
        group = QButtonGroup(self)
        for button in (self.download_choice, self.file_choice, self.server_choice):
            group.addButton(button)

        # 1. the catalog model
        self.download_box = QGroupBox(self)
        box = QVBoxLayout(self.download_box)
        box.addWidget(QLabel(f"{model.summary} Licence: {model.license}.", self.download_box))
        folder_row = QHBoxLayout()
        self.folder = QLabel(self.download_box)
        self.folder.setWordWrap(True)
        self.change_folder = QPushButton("Change folder…", self.download_box)
        self.change_folder.clicked.connect(self._pick_folder)
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(self.change_folder)
        box.addLayout(folder_row)
        self.progress = QProgressBar(self.download_box)
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress_text = QLabel(self.download_box)
        self.progress_text.setWordWrap(True)
        buttons = QHBoxLayout()
        self.download_button = QPushButton("Download", self.download_box)
        self.download_button.clicked.connect(self.start_download)
        self.cancel_button = QPushButton("Cancel download", self.download_box)
        self.cancel_button.clicked.connect(self.cancel_download)
        buttons.addWidget(self.download_button)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        box.addWidget(self.progress)
        box.addWidget(self.progress_text)
        box.addLayout(buttons)

        # 2. a file the person has
        self.file_box = QGroupBox(self)
        file_row = QHBoxLayout(self.file_box)
        self.gguf = QLineEdit(self.file_box)
        self.gguf.setPlaceholderText("/path/to/model.gguf")
        browse = QPushButton("Browse…", self.file_box)
        browse.clicked.connect(self._pick_file)
        file_row.addWidget(self.gguf, 1)
        file_row.addWidget(browse)

        # 3. an OpenAI-compatible server
        self.server_box = QGroupBox(self)
        form = QFormLayout(self.server_box)
        self.base_url = QLineEdit(str(settings.get("local.engine_url") or ""), self.server_box)
        self.base_url.setPlaceholderText("http://127.0.0.1:11434/v1")
        self.api_key = QLineEdit(credentials.get(ENGINE_API_KEY) or "", self.server_box)
        self.api_key.setEchoMode(QLineEdit.EchoMode.Password)
        self.api_key.setPlaceholderText("none needed for Ollama or LM Studio")
        self.server_model = QComboBox(self.server_box)
        self.server_model.setEditable(True)
        self.server_model.setCurrentText(str(settings.get("local.model") or ""))
        self.test_button = QPushButton("Test connection", self.server_box)
        self.test_button.clicked.connect(self.test_connection)
        self.test_result = QLabel(self.server_box)
        self.test_result.setWordWrap(True)
        key_note = "" if credentials.persistent else " (no system keyring: kept until you quit)"
        form.addRow("Server URL", self.base_url)
        form.addRow("API key" + key_note, self.api_key)
        form.addRow("Model", self.server_model)
        form.addRow(self.test_button, self.test_result)

        self.problems = QLabel(self)
        theme.styled(self.problems, _ERROR_STYLE)
        self.problems.setWordWrap(True)
        self.use_button = QPushButton("Use this model", self)
        self.use_button.setDefault(True)
        self.use_button.clicked.connect(self.use)
        close = QPushButton("Close", self)
        close.clicked.connect(self.reject)
        bottom = QHBoxLayout()
        bottom.addStretch(1)
        bottom.addWidget(close)
        bottom.addWidget(self.use_button)

        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Answers on this computer need a model. Pick one way:", self))
        self.body, choices = scroll_body(self)  # scrolls where the screen is too small for it
        for choice, body in ((self.download_choice, self.download_box), (self.file_choice, self.file_box),
                             (self.server_choice, self.server_box)):
            choices.addWidget(choice)
            choices.addWidget(body)
            choice.toggled.connect(body.setEnabled)
        layout.addWidget(self.body, 1)
        layout.addWidget(self.problems)
        layout.addLayout(bottom)

        engine, gguf = settings.get("local.engine"), str(settings.get("local.gguf") or "")
        if engine == "openai":
            self.server_choice.setChecked(True)
        elif engine == "llamacpp" and gguf and Path(gguf) != self.downloader.target(model):
            self.file_choice.setChecked(True)
            self.gguf.setText(gguf)
        else:
            self.download_choice.setChecked(True)
        for choice, body in ((self.download_choice, self.download_box), (self.file_choice, self.file_box),
                             (self.server_choice, self.server_box)):
            body.setEnabled(choice.isChecked())
        self._refresh_download()

    def setVisible(self, visible: bool) -> None:  # type: ignore[override]
        if visible and not self.isVisible():
            fit_dialog(self, self.body)  # before Qt places it: its buttons stay on screen
        super().setVisible(visible)

    # -- the catalog model ------------------------------------------------------------

    def _refresh_download(self) -> None:
        model, d = self.catalog_model, self.downloader
        self.folder.setText(f"Stored in {d.models_dir}")
        installed = d.installed(model)
        kept = d.partial_bytes(model)
        if installed:
            self.progress.setValue(1000)
            self.progress_text.setText("Downloaded and verified.")
        elif kept and not self.downloading:
            self.progress.setValue(int(1000 * kept / model.size_bytes))
            self.progress_text.setText(f"{human_size(kept)} of {human_size(model.size_bytes)} downloaded "
                                       "earlier: Download goes on from there.")
        elif not self.downloading:
            self.progress.setValue(0)
            self.progress_text.setText(f"{human_size(model.size_bytes)} to download, checked before use.")
        self.download_button.setEnabled(not installed and not self.downloading)
        self.download_button.setText("Resume download" if kept and not installed else "Download")
        self.cancel_button.setEnabled(self.downloading)
        self.change_folder.setEnabled(not self.downloading)

    def set_models_dir(self, folder: Path) -> None:
        """Keep downloaded models in `folder` from now on (saved in the settings)."""
        self.settings.set("local.models_dir", str(folder))
        self.settings.save()
        self.downloader.models_dir = Path(folder)
        self._refresh_download()

    def _pick_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for models", str(self.downloader.models_dir))
        if folder:
            self.set_models_dir(Path(folder))

    def start_download(self) -> None:
        """Download off the UI thread; when it is verified, use it."""
        if self.downloading:
            return
        self.download_choice.setChecked(True)
        self.problems.clear()
        self.cancel_event = threading.Event()
        self.downloading = True
        self.progress_text.setText("Connecting…")
        self._refresh_download()
        downloader, model, cancel, progressed = self.downloader, self.catalog_model, self.cancel_event, self._progressed
        self.runner.run(lambda: downloader.download(model, progressed.emit, cancel),
                        self._downloaded, self._download_failed)

    def cancel_download(self) -> None:
        self.cancel_event.set()
        self.cancel_button.setEnabled(False)
        self.progress_text.setText("Cancelling…")

    @Slot(object)
    def _show_progress(self, p: Progress) -> None:
        if not self.downloading:
            return
        self.progress.setValue(int(1000 * p.fraction))
        eta = f", about {human_duration(p.eta_s)} left" if p.eta_s is not None else ""
        self.progress_text.setText(f"{human_size(p.done)} of {human_size(p.total)} · "
                                   f"{human_size(p.speed_bps)}/s{eta}")

    def _downloaded(self, path: Path) -> None:
        self.downloading = False
        self._refresh_download()
        self._save("llamacpp", gguf=str(path))

    def _download_failed(self, exc: BaseException) -> None:
        self.downloading = False
        self._refresh_download()
        if isinstance(exc, DownloadCancelled):
            self.progress_text.setText(str(exc))
        else:
            self.problems.setText(str(exc) if isinstance(exc, AppError) else
                                  "The download stopped because of a fault in TinyLlama; see Help → Logs.")

    # -- a file, a server ---------------------------------------------------------------

    def _pick_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "A GGUF model file", str(Path.home()), "GGUF models (*.gguf)")
        if path:
            self.gguf.setText(path)
            self.file_choice.setChecked(True)

    def test_connection(self) -> None:
        """Ask the server for its models; fill the list, or say what is wrong."""
        url, key = self.base_url.text().strip(), self.api_key.text().strip()
        if problem := _url_problem(url):
            theme.styled(self.test_result, _ERROR_STYLE)
            self.test_result.setText(problem)
            return
        self.test_button.setEnabled(False)
        theme.styled(self.test_result, "")
        self.test_result.setText("Testing…")
        self.runner.run(lambda: list_models(url, key), self._tested, self._test_failed)

    def _tested(self, models: list[str]) -> None:
        self.test_button.setEnabled(True)
        theme.styled(self.test_result, "")
        current = self.server_model.currentText()
        self.server_model.clear()
        self.server_model.addItems(models)
        self.server_model.setCurrentText(current if current in models else (models[0] if models else ""))
        self.test_result.setText(f"Connected: {len(models)} model{'s' if len(models) != 1 else ''} offered.")

    def _test_failed(self, exc: BaseException) -> None:
        self.test_button.setEnabled(True)
        theme.styled(self.test_result, _ERROR_STYLE)
        self.test_result.setText(str(exc) if isinstance(exc, AppError) else "The test failed; see Help → Logs.")

    # -- choosing -----------------------------------------------------------------------

    def use(self) -> None:
        """Save the checked choice (when it is complete) and close."""
        self.problems.clear()
        if self.download_choice.isChecked():
            if not self.downloader.installed(self.catalog_model):
                self.start_download()  # one click: it is used as soon as it is verified
                return
            self._save("llamacpp", gguf=str(self.downloader.target(self.catalog_model)))
        elif self.file_choice.isChecked():
            path = Path(self.gguf.text().strip()).expanduser()
            if not path.is_file():
                self.problems.setText(f"There is no file at {path}. Pick a .gguf model file.")
                return
            if not _is_gguf(path):
                self.problems.setText(f"{path.name} is not a GGUF model (it does not start with “GGUF”).")
                return
            self._save("llamacpp", gguf=str(path))
        else:
            url = self.base_url.text().strip()
            if problem := _url_problem(url):
                self.problems.setText(problem)
                return
            key = self.api_key.text().strip()
            if key:
                self.credentials.set(ENGINE_API_KEY, key)
            else:
                self.credentials.delete(ENGINE_API_KEY)
            self._save("openai", url=url, model=self.server_model.currentText().strip())

    def _save(self, engine: str, *, gguf: str | None = None, url: str | None = None, model: str | None = None) -> None:
        self.settings.set("local.engine", engine)
        if gguf is not None:
            self.settings.set("local.gguf", gguf)
        if url is not None:
            self.settings.set("local.engine_url", url)
        if model is not None:
            self.settings.set("local.model", model)
        self.settings.set("local.model_offered", True)
        self.settings.save()
        self.model_chosen.emit()
        self.accept()

    def reject(self) -> None:
        self.cancel_event.set()  # closing the dialog stops a download (its bytes are kept)
        self.settings.set("local.model_offered", True)
        self.settings.save()
        super().reject()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.cancel_event.set()
        super().closeEvent(event)


def _url_problem(url: str) -> str:
    if not (url.startswith("http://") or url.startswith("https://")) or " " in url:
        return "The server URL must start with http:// or https:// (e.g. http://127.0.0.1:11434/v1)."
    return ""


def _is_gguf(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"GGUF"
    except OSError:
        return False
