"""Dark mode and the Light / Dark / System choice (desktop/views/theme.py).

In Dark every text the app draws — style-sheet labels, the transcript's role names,
errors, code blocks and links, the cost chart — must stay readable: each colour pair is
checked with WCAG's contrast ratio (≥ 4.5 for text) as Qt really laid it out (the
transcript's QTextDocument fragments, the widgets' style sheets, the chart's pixels).
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tokenize
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QBrush, QColor, QPalette, QTextCursor, QTextDocument
from PySide6.QtWidgets import QApplication, QLabel, QPushButton, QWidget

from desktop.core.errors import AppError
from desktop.core.settings import Settings
from desktop.qt.runner import Runner
from desktop.services.cost import CostService
from desktop.services.deploy.changes import ChangeRow
from desktop.views import theme
from desktop.views.cost_panel import CostPanel
from desktop.views.settings_dialog import SettingsDialog
from desktop.views.wizard import DeployWizard, WizardContext
from tests.conftest import FrozenClock
from tests.fixtures.aws import inject_cost_and_usage
from tests.gui.conftest import save_screenshot, screenshot_dir
from tests.gui.test_cost_panel import month_of_results

ROOT = Path(__file__).resolve().parents[2]
CODE = "Here:\n\n```python\n# add one\ndef inc(x: int) -> int:\n    return x + 1  # 'done'\n```\n\nSee [docs](https://example.org)."
HEX = re.compile(r"#(?:[0-9a-fA-F]{3}){1,2}\b")


def settle(qtbot: Any) -> None:
    """Qt posts the palette change to existing widgets: wait until every one has it."""
    window = QApplication.palette().color(QPalette.ColorRole.Window)
    qtbot.waitUntil(lambda: all(w.palette().color(QPalette.ColorRole.Window) == window
                                for w in QApplication.topLevelWidgets()), timeout=2000)


@pytest.fixture
def choose(qapp: QApplication, qtbot: Any) -> Iterator[Any]:
    """theme.apply for the test, settled; the session's palette is the platform's afterwards."""

    def apply(choice: str) -> None:
        theme.apply(qapp, choice)
        settle(qtbot)

    yield apply
    theme.apply(qapp, "system")


def shot(widget: QWidget, name: str) -> None:
    """A screenshot to look at (docs/screenshots when regenerated on purpose)."""
    save_screenshot(widget, name)


# what Qt laid out --------------------------------------------------------------------


def painted(brush: QBrush) -> bool:
    return brush.style() != Qt.BrushStyle.NoBrush


def document_pairs(doc: QTextDocument, base: QColor, text: QColor) -> list[tuple[str, str, str]]:
    """(visible text, foreground, background) of every fragment of a rendered document,
    backgrounds taken from the fragment, its table cell or table, or the view's Base."""
    pairs = []
    block = doc.begin()
    while block.isValid():
        cursor = QTextCursor(block)
        table = cursor.currentTable()
        fragments = block.begin()
        while not fragments.atEnd():
            fragment = fragments.fragment()
            fragments += 1
            words = fragment.text().strip()
            if not words:
                continue  # spaces draw nothing
            fmt = fragment.charFormat()
            fg = fmt.foreground().color() if painted(fmt.foreground()) else text
            bg = base
            if table is not None:
                cell = table.cellAt(cursor)
                for brush in (table.format().background(), cell.format().background() if cell.isValid() else None):
                    if brush is not None and painted(brush):
                        bg = brush.color()
            if painted(fmt.background()):
                bg = fmt.background().color()
            pairs.append((words, fg.name(), bg.name()))
        block = block.next()
    return pairs


_DECL = re.compile(r"(?<![-\w])(color|background)\s*:\s*(#[0-9a-fA-F]{3,6})")


def sheet_colours(widget: QWidget) -> dict[str, str]:
    """`color` and `background` of a widget's own style sheet (its top-level rule only)."""
    sheet = widget.styleSheet()
    if "{" in sheet:
        return {}  # a selector rule (progress bar chunks): no text of its own there
    return {name: value for name, value in _DECL.findall(sheet)}


def label_pairs(root: QWidget) -> list[tuple[str, str, str]]:
    """(text, foreground, background) of every label under root, as its style sheet and
    its ancestors' style sheets and palettes make it."""
    pairs = []
    for label in [root, *root.findChildren(QWidget)]:
        if not isinstance(label, QLabel) or not label.text().strip() or not label.isEnabled():
            continue  # WCAG exempts disabled controls: they are meant to look faint
        own = sheet_colours(label)
        fg = own.get("color") or label.palette().color(QPalette.ColorRole.WindowText).name()
        bg = own.get("background")
        parent = label.parentWidget()
        while bg is None and parent is not None:
            bg = sheet_colours(parent).get("background")
            parent = parent.parentWidget()
        pairs.append((label.text()[:40], fg, bg or label.palette().color(QPalette.ColorRole.Window).name()))
    return pairs


GLYPHS = {"●"}  # the status dot is a graphic: WCAG asks 3:1 of it, 4.5:1 of text


def unreadable(pairs: list[tuple[str, str, str]]) -> list[str]:
    return [f"{text!r}: {fg} on {bg} = {theme.contrast(fg, bg):.2f}" for text, fg, bg in pairs
            if theme.contrast(fg, bg) < (theme.GRAPHIC_CONTRAST if text in GLYPHS else theme.TEXT_CONTRAST)]


# windows with something in them ------------------------------------------------------


def chat_window(open_window: Any, qtbot: Any) -> Any:
    """A shown window on a chat with code, an error and a notice, its code coloured (that
    comes right after the window's first paint)."""
    window = open_window().window
    conv = window.history.create_conversation("Dark mode")
    window.history.add_message(conv.id, "user", "How do I add one in Python?")
    window.history.add_message(conv.id, "assistant", CODE, completion_tokens=42, total_s=1.2)
    window.history.add_message(conv.id, "user", "And again?")
    window.history.add_message(conv.id, "assistant", "", status="failed",
                               error="The GPU did not start: the budget guard refused (hard cap $20 reached).")
    window._refresh_list()
    window.open_conversation(conv.id)
    window.show_notice("Settings file could not be read; using defaults.")
    window.resize(1000, 700)
    qtbot.waitUntil(lambda: any(text == "def" for text, _fg, _bg in transcript_pairs(window)))  # Pygments split it
    return window


def transcript_pairs(window: Any) -> list[tuple[str, str, str]]:
    view = window.chat.transcript
    palette = view.palette()
    return document_pairs(view.document(), palette.color(QPalette.ColorRole.Base),
                          palette.color(QPalette.ColorRole.Text))


@pytest.fixture
def cost_panel(qtbot: Any, aws_env: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
               runner: Runner) -> CostPanel:
    """A cost panel on moto's Cost Explorer with ten days of spend, both caps and the guard."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_env)
    inject_cost_and_usage(aws_env, month_of_results(2033, 2, 10))
    clock = FrozenClock(datetime(2033, 2, 10, 9, 0, tzinfo=UTC))
    service = CostService(boto3.client("ce", region_name="us-east-1"), cache_file=tmp_path / "cost.json",
                          clock=clock)
    panel = CostPanel(service, runner, warning_usd=15.0, hard_cap_usd=20.0, tick_ms=3_600_000)
    qtbot.addWidget(panel)
    panel.show()
    qtbot.waitExposed(panel)
    qtbot.waitUntil(lambda: panel.snapshot is not None and not panel._busy, timeout=10000)
    panel.set_guard_refusal("month-to-date spend $21.40 passed the hard cap of $20.00.")
    return panel


def wizard(qtbot: Any, paths: Any, runner: Runner) -> DeployWizard:
    """The deploy wizard with each page showing its coloured states."""
    wiz = DeployWizard(WizardContext(Settings(paths.settings_file), runner), profiles=[])
    qtbot.addWidget(wiz)
    wiz.account_page._show_error("The AWS credentials were refused: check the profile's keys.")
    wiz.review_page._fill([ChangeRow("Add", "Router", "AWS::Lambda::Function"),
                           ChangeRow("Modify", "Api", "AWS::ApiGatewayV2::Api", "True", "Properties"),
                           ChangeRow("Remove", "Old", "AWS::S3::Bucket")])
    wiz.review_page._failed(AppError("The change set could not be created."))
    wiz.review_page.warning.setText("Removing the bucket deletes what it holds.")
    wiz.deploy_page._add_event("10:00:00", "Router", "CREATE_FAILED", "Resource limit exceeded")
    wiz.deploy_page._add_event("10:00:01", "Stack", "ROLLBACK_IN_PROGRESS", "")
    wiz.deploy_page._add_event("10:00:09", "Api", "CREATE_COMPLETE", "")
    wiz.deploy_page._show_outcome(False, "Router could not be created.", "Ask AWS for a higher limit.")
    return wiz


# the tests ---------------------------------------------------------------------------


def test_dark_has_no_light_text_on_a_light_background(qtbot, open_window, paths, runner, cost_panel,
                                                      choose) -> None:  # type: ignore[no-untyped-def]
    choose("dark")
    assert QApplication.palette().color(QPalette.ColorRole.Window).lightnessF() < 0.3
    window = chat_window(open_window, qtbot)
    pairs = transcript_pairs(window)
    seen = " ".join(text for text, _fg, _bg in pairs)
    for words in ("You", "Assistant", "def", "inc", "Copy", "docs", "budget guard", "42 tokens"):
        assert words in seen, words  # the walk reached the role names, code, links, error, meta line
    code_bgs = {bg for text, _fg, bg in pairs if text == "def"}
    assert code_bgs == {theme.colours().code_bg}, "the code block has the dark theme's background"
    assert unreadable(pairs) == []
    assert unreadable(label_pairs(window)) == []

    dialog = SettingsDialog(Settings(paths.settings_file), window)
    qtbot.addWidget(dialog)
    dialog.problems.setText("API URL must start with https://.")
    assert unreadable(label_pairs(dialog)) == []

    wiz = wizard(qtbot, paths, runner)
    for page in (wiz.account_page, wiz.options_page, wiz.upload_page, wiz.review_page, wiz.deploy_page,
                 wiz.done_page):
        assert unreadable(label_pairs(page)) == [], type(page).__name__
    table = wiz.review_page.table
    for row in range(table.rowCount()):
        for col in range(table.columnCount()):
            item = table.item(row, col)
            fg = item.foreground().color() if painted(item.foreground()) \
                else table.palette().color(QPalette.ColorRole.Text)
            assert theme.contrast(fg, item.background().color()) >= theme.TEXT_CONTRAST, item.text()
    assert not wiz.deploy_page.outcome.styleSheet().count("#ffebee")  # not the light theme's pink box

    assert cost_panel.palette().color(QPalette.ColorRole.Window).lightnessF() < 0.3  # opened before the switch
    assert unreadable(label_pairs(cost_panel)) == []
    chart = cost_panel.chart.grab().toImage()
    corner = chart.pixelColor(2, chart.height() - 2)
    assert corner.name() == theme.colours().base and corner.lightnessF() < 0.3  # no white chart in Dark
    colours = theme.colours()
    for series in (colours.chart_bar, colours.chart_line, colours.chart_warning, colours.chart_cap):
        assert theme.contrast(series, colours.base) >= theme.GRAPHIC_CONTRAST
    drawn = {chart.pixelColor(x, y).name() for x in range(0, chart.width(), 2) for y in range(0, chart.height(), 2)}
    assert colours.chart_bar in drawn  # the bars are drawn in the theme's series colour

    shot(window, "main_dark.png")
    shot(dialog, "profile_dialog_dark.png")
    shot(cost_panel, "cost_panel_dark.png")
    shot(wiz.review_page, "wizard_4_review_dark.png")
    shot(wiz.deploy_page, "wizard_5_deploy_dark.png")


def test_light_is_readable_too_and_screenshots(qtbot, open_window, paths, cost_panel,
                                               choose) -> None:  # type: ignore[no-untyped-def]
    choose("light")
    assert QApplication.palette().color(QPalette.ColorRole.Window).lightnessF() > 0.8
    window = chat_window(open_window, qtbot)
    assert unreadable(transcript_pairs(window)) == []
    assert unreadable(label_pairs(window)) == []
    assert unreadable(label_pairs(cost_panel)) == []
    dialog = SettingsDialog(Settings(paths.settings_file), window)
    qtbot.addWidget(dialog)
    shot(window, "main_light.png")
    shot(dialog, "profile_dialog_light.png")
    shot(cost_panel, "cost_panel_light.png")


def test_a_disabled_button_looks_disabled_in_dark(qtbot, choose) -> None:  # type: ignore[no-untyped-def]
    choose("dark")
    enabled, disabled = QPushButton("Send"), QPushButton("Send")
    disabled.setEnabled(False)
    for button in (enabled, disabled):
        qtbot.addWidget(button)
        button.resize(120, 40)
    palette = QApplication.palette()
    assert palette.color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText) != \
        palette.color(QPalette.ColorGroup.Active, QPalette.ColorRole.ButtonText)

    def brightest(button: QPushButton) -> float:  # the label's glyphs are the lightest pixels
        image = button.grab().toImage()
        return max(image.pixelColor(x, y).lightnessF() for x in range(image.width()) for y in range(image.height()))

    assert brightest(enabled) - brightest(disabled) > 0.2


def test_choosing_dark_in_settings_re_renders_the_open_transcript(qtbot, open_window, paths,
                                                                  choose) -> None:  # type: ignore[no-untyped-def]
    choose("light")
    window = chat_window(open_window, qtbot)
    light = theme.colours()
    assert ("You", light.user, light.base) in transcript_pairs(window)

    settings = Settings(paths.settings_file)
    dialog = SettingsDialog(settings, window)
    qtbot.addWidget(dialog)
    assert dialog.theme.currentData() == "system"  # the default
    dialog.theme.setCurrentIndex(dialog.theme.findData("dark"))
    with qtbot.waitSignal(dialog.accepted, timeout=1000):
        dialog.save()
    assert Settings(paths.settings_file).get("appearance.theme") == "dark"

    dark = theme.colours()
    assert dark.dark and dark.user != light.user
    # No restart, no reopening the chat: the transcript already shows Dark's colours.
    qtbot.waitUntil(lambda: ("You", dark.user, dark.base) in transcript_pairs(window), timeout=2000)
    pairs = transcript_pairs(window)
    assert {bg for text, _fg, bg in pairs if text == "def"} == {dark.code_bg}
    assert unreadable(pairs) == []
    # Style sheets follow too: the notice box and the status bar's error text.
    assert dark.warning_bg in window.notice_box.styleSheet() and light.warning_bg not in window.notice_box.styleSheet()


def test_system_gives_the_platform_its_palette_back(qapp, choose) -> None:  # type: ignore[no-untyped-def]
    platform_style = qapp.style().name()
    platform_window = QPalette().color(QPalette.ColorRole.Window)  # offscreen's (light) default
    choose("dark")
    assert theme.colours().dark and qapp.style().name().lower() == "fusion"
    choose("system")
    assert theme.current_choice() == "system"
    assert qapp.style().name() == platform_style
    assert qapp.palette().color(QPalette.ColorRole.Window) == platform_window and not theme.colours().dark


class _Changes(QObject):
    """Counts theme changes; parented to a widget, its connection ends with it."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.count = 0

    def changed(self) -> None:
        self.count += 1


def test_a_palette_the_platform_changes_by_itself_restyles_once(qapp, qtbot, choose) -> None:  # type: ignore[no-untyped-def]
    label = QLabel("muted words")
    qtbot.addWidget(label)
    theme.styled(label, "color: $muted;")
    changes = _Changes(label)
    theme.on_change(changes.changed)
    choose("light")
    before, changes.count = label.styleSheet(), 0
    # What a desktop's own colour scheme edit does: a new palette, still light.
    palette = QPalette(theme.light_palette())
    for role, colour in ((QPalette.ColorRole.Window, "#fff8e1"), (QPalette.ColorRole.Base, "#fffde7"),
                         (QPalette.ColorRole.WindowText, "#1a237e"), (QPalette.ColorRole.Text, "#1a237e"),
                         (QPalette.ColorRole.PlaceholderText, "#5d4037")):
        palette.setColor(role, QColor(colour))
    qapp.setPalette(palette)
    qtbot.waitUntil(lambda: label.styleSheet() != before)
    settle(qtbot)
    assert changes.count == 1  # Qt posts the change to every top-level widget: one re-style


def test_muted_and_links_stay_readable_on_an_odd_system_palette(qapp) -> None:  # type: ignore[no-untyped-def]
    palette = QPalette(theme.light_palette())
    palette.setColor(QPalette.ColorRole.PlaceholderText, QColor("#f0f0f0"))  # barely visible on white
    palette.setColor(QPalette.ColorRole.Link, QColor("#ddddff"))
    colours = theme.colours(palette)
    for name in ("muted", "link", "error", "user", "assistant"):
        for bg in (colours.base, colours.window, colours.code_bg):
            assert theme.contrast(getattr(colours, name), bg) >= theme.TEXT_CONTRAST, (name, bg)


def test_wcag_contrast_formula() -> None:
    assert theme.contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert theme.contrast("#ffffff", "#ffffff") == pytest.approx(1.0)
    assert theme.contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)  # WebAIM's figure


def test_no_colour_literal_outside_the_theme() -> None:
    found = []
    for path in sorted((ROOT / "desktop").rglob("*.py")):
        if path.name == "theme.py" and path.parent.name == "views":
            continue
        for token in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
            if token.type == tokenize.STRING and HEX.search(token.string):
                found.append(f"{path.relative_to(ROOT)}:{token.start[0]}: {token.string[:60]}")
    assert found == []


def test_the_static_check_sees_a_colour_in_a_string() -> None:
    tokens = tokenize.generate_tokens(io.StringIO('x = f"color: #b00020;"  # not #abc\n').readline)
    assert [t.string for t in tokens if t.type == tokenize.STRING and HEX.search(t.string)] == ['f"color: #b00020;"']


SCALED = """
import os, sys
os.environ["QT_QPA_PLATFORM"] = "offscreen"
from pathlib import Path
from PySide6.QtWidgets import QApplication
from desktop.core.history import HistoryStore
from desktop.core.settings import Settings
from desktop.qt.runner import Runner
from desktop.views import theme
from desktop.views.main_window import MainWindow
app = QApplication([])
theme.apply(app, "dark")
tmp = Path(sys.argv[1])
history = HistoryStore(tmp / "history.db")
runner = Runner()
window = MainWindow(history, Settings(tmp / "settings.json"), runner)
conv = history.create_conversation("Scaled")
history.add_message(conv.id, "user", "How do I add one in Python?")
history.add_message(conv.id, "assistant", sys.argv[2])
window._refresh_list()
window.open_conversation(conv.id)
window.resize(900, 600)
window.show()
# The code is coloured in the turn after the first paint: shoot once that has happened.
from PySide6.QtCore import QTimer
from desktop.qt.first_paint import after_first_paint
after_first_paint(window, lambda: QTimer.singleShot(0, app.quit))
app.exec()
image = window.grab()
print(image.devicePixelRatio(), image.width())
image.save(sys.argv[3])
window.shutdown()
runner.shutdown(5000)
history.close()
"""


def test_a_screenshot_at_200_percent(tmp_path: Path) -> None:
    out = screenshot_dir() / "main_dark_200_percent.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    env = {"QT_SCALE_FACTOR": "2", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
           "XDG_CONFIG_HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", SCALED, str(tmp_path), CODE, str(out)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    ratio, width = result.stdout.split()
    assert float(ratio) == 2.0 and int(width) == 1800  # drawn at twice the pixels
