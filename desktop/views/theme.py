"""Every colour the app draws, derived from the current QPalette, and the Light / Dark / System choice.

Views never write a colour literal: they ask `colours()` for a semantic one (error, muted,
the user's role name, the chart's bars…), or give `styled()` a style sheet template with
`$error`-style names, which is re-applied whenever the application palette changes. Views
that render HTML (the transcript) or paint (the chart) register with `on_change()` or read
`colours()` at paint time, so a switch between Light and Dark, or the system turning dark
at sunset, re-renders everything without a restart.

Each semantic colour has a light and a dark variant, picked by the Window colour's
lightness, and is then nudged towards the palette's text colour until it meets WCAG's
contrast ratio (4.5 for text, 3 for graphics) on the backgrounds it is drawn on — so even
an unusual system palette never gets light text on a light box.
"""

from __future__ import annotations

from string import Template
from typing import NamedTuple

from PySide6.QtCore import QCoreApplication, QEvent, Signal
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication, QWidget

from desktop.core.markdown import CodeStyle
from desktop.qt.properties import set_properties

CHOICES = {"system": "System", "light": "Light", "dark": "Dark"}
DEFAULT_CHOICE = "system"
TEXT_CONTRAST = 4.5  # WCAG AA for normal text
GRAPHIC_CONTRAST = 3.0  # WCAG AA for non-text (status dots, chart series)
_TEMPLATE_PROPERTY = "tinyllamaStyleTemplate"

# Pygments styles whose every token colour meets 4.5:1 on the code background below
# (xcode: ≥ 4.76 on #f6f8fa; github-dark: ≥ 5.16 on #161b22; checked over every token).
_CODE = {False: ("xcode", "#f6f8fa"), True: ("github-dark", "#161b22")}

# (light variant, dark variant) of each semantic colour, before the contrast check.
_VARIANTS: dict[str, tuple[str, str]] = {
    "user": ("#2f5fa7", "#8ab4f8"),
    "assistant": ("#3a7d44", "#81c995"),
    "error": ("#b00020", "#f28b82"),
    "success": ("#1b5e20", "#81c995"),
    "progress": ("#b34700", "#ffb74d"),
    "warning_text": ("#4e342e", "#fde293"),
    "warning_bg": ("#fff8e1", "#3b3320"),
    "warning_border": ("#f0d98c", "#8a6d1f"),
    "error_bg": ("#ffebee", "#3f2224"),
    "error_border": ("#e57373", "#a04848"),
    "success_bg": ("#e8f5e9", "#1f3324"),
    "success_border": ("#81c784", "#3f7d4a"),
    "border": ("#bdbdbd", "#5a5a5a"),
    "chart_grid": ("#e0e0e0", "#3c3c3c"),
    # progress bar chunks: under the bar's (highlighted, white) text in both palettes
    "bar_ok": ("#2e7d32", "#3f7d4a"),
    "bar_over": ("#c62828", "#a04848"),
    "chart_bar": ("#5b9bd5", "#4f7fb5"),
    "chart_line": ("#1565c0", "#8ab4f8"),
    "chart_warning": ("#c55a00", "#ffab40"),
    "chart_cap": ("#c62828", "#f28b82"),
    "dot_ready": ("#2e9d4b", "#5bd67a"),
    "dot_busy": ("#c28b00", "#f5c542"),
    "dot_stopping": ("#d46b08", "#f29c4b"),
    "dot_stopped": ("#767676", "#9e9e9e"),
    "dot_unknown": ("#949494", "#7a7a7a"),
}


class Colours(NamedTuple):
    """The semantic colours of the current palette, as `#rrggbb` names (usable in HTML and CSS)."""

    dark: bool
    text: str
    window: str
    base: str
    muted: str
    link: str
    user: str
    assistant: str
    error: str
    success: str
    progress: str
    warning_text: str
    warning_bg: str
    warning_border: str
    error_bg: str
    error_border: str
    success_bg: str
    success_border: str
    border: str
    code_bg: str
    code_style: str
    chart_grid: str
    bar_ok: str
    bar_over: str
    chart_bar: str
    chart_line: str
    chart_warning: str
    chart_cap: str
    dot_ready: str
    dot_busy: str
    dot_stopping: str
    dot_stopped: str
    dot_unknown: str

    def code(self) -> CodeStyle:
        """How code blocks look in this palette (for desktop.core.markdown)."""
        return CodeStyle(pygments_style=self.code_style, background=self.code_bg, label=self.muted, link=self.link)


# WCAG 2 relative luminance and contrast ratio ----------------------------------------


def luminance(colour: QColor) -> float:
    """WCAG 2's relative luminance of an opaque colour (0 black … 1 white)."""

    def channel(value: float) -> float:
        return value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(colour.redF()) + 0.7152 * channel(colour.greenF()) + 0.0722 * channel(colour.blueF())


def contrast(a: QColor | str, b: QColor | str) -> float:
    """WCAG 2's contrast ratio of two colours, 1 … 21."""
    # (A QColor is not copied: PySide would first try it as a Qt.GlobalColor, building the
    # whole Qt namespace; desktop.qt.properties.)
    la, lb = sorted((luminance(a if isinstance(a, QColor) else QColor(a)),
                     luminance(b if isinstance(b, QColor) else QColor(b))), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def _mix(a: QColor, b: QColor, t: float) -> QColor:
    """a blended t of the way towards b."""
    return QColor.fromRgbF(a.redF() + (b.redF() - a.redF()) * t, a.greenF() + (b.greenF() - a.greenF()) * t,
                           a.blueF() + (b.blueF() - a.blueF()) * t)


def _over(colour: QColor, background: QColor) -> QColor:
    """A translucent colour (Qt's PlaceholderText is often text at 50 %) as it shows on background."""
    return _mix(background, QColor(colour.red(), colour.green(), colour.blue()), colour.alphaF())


def _readable(colour: QColor, backgrounds: list[QColor], minimum: float) -> str:
    """`colour`, moved towards black or white (whichever the backgrounds contrast with) until it
    meets `minimum` on every background."""
    darkest = min(backgrounds, key=luminance)
    target = QColor("#000000") if luminance(darkest) > 0.18 else QColor("#ffffff")
    for step in range(11):
        candidate = _mix(colour, target, step / 10)
        if all(contrast(candidate, bg) >= minimum for bg in backgrounds):
            return candidate.name()
    return target.name()


def colours(palette: QPalette | None = None) -> Colours:
    """The semantic colours for `palette` (default: the application's)."""
    palette = palette or QGuiApplication.palette()
    key = palette.cacheKey()
    if _cache.get("key") == key:
        return _cache["colours"]  # type: ignore[return-value]
    window = palette.color(QPalette.ColorGroup.Active, QPalette.ColorRole.Window)
    base = palette.color(QPalette.ColorGroup.Active, QPalette.ColorRole.Base)
    text = palette.color(QPalette.ColorGroup.Active, QPalette.ColorRole.Text)
    dark = window.lightnessF() < 0.5
    style, code_bg = _CODE[dark]
    page = [base, window]
    picked = {name: QColor(pair[1] if dark else pair[0]) for name, pair in _VARIANTS.items()}
    placeholder = _over(palette.color(QPalette.ColorGroup.Active, QPalette.ColorRole.PlaceholderText), base)
    values: dict[str, object] = {
        "dark": dark, "text": text.name(), "window": window.name(), "base": base.name(),
        "code_bg": code_bg, "code_style": style,
        # muted and links also sit in code blocks' label row
        "muted": _readable(placeholder, [*page, QColor(code_bg)], TEXT_CONTRAST),
        "link": _readable(palette.color(QPalette.ColorGroup.Active, QPalette.ColorRole.Link),
                          [*page, QColor(code_bg)], TEXT_CONTRAST),
    }
    for name in ("user", "assistant", "error", "success", "progress"):
        values[name] = _readable(picked[name], [*page, picked["error_bg"], picked["success_bg"]], TEXT_CONTRAST)
    values["warning_text"] = _readable(picked["warning_text"], [picked["warning_bg"]], TEXT_CONTRAST)
    for name in ("warning_bg", "error_bg", "success_bg"):
        # boxes keep the palette's own text colour readable on them
        values[name] = picked[name].name() if contrast(picked[name], text) >= TEXT_CONTRAST else window.name()
    for name in ("warning_border", "error_border", "success_border", "border", "chart_grid", "bar_ok", "bar_over"):
        values[name] = picked[name].name()  # decoration next to text, not information
    for name in ("chart_bar", "chart_line", "chart_warning", "chart_cap",
                 "dot_ready", "dot_busy", "dot_stopping", "dot_stopped", "dot_unknown"):
        values[name] = _readable(picked[name], page, GRAPHIC_CONTRAST)
    result = Colours(**values)  # type: ignore[arg-type]
    _cache.update(key=key, colours=result)
    return result


_cache: dict[str, object] = {}  # the last palette's colours: views ask on every re-render


# style sheets that follow the palette ----------------------------------------------


def styled(widget: QWidget, template: str) -> None:
    """Give `widget` a style sheet whose `$name`s are Colours fields, kept current when the
    palette changes. `styled(widget, "")` clears it (never call setStyleSheet on it directly:
    the next palette change would bring the old template back)."""
    widget.setProperty(_TEMPLATE_PROPERTY, template)
    _apply_template(widget, template, colours())
    _watcher()


def _apply_template(widget: QWidget, template: str, current: Colours) -> None:
    sheet = Template(template).substitute(current._asdict())
    if widget.styleSheet() != sheet:  # a style sheet that sets colours changes the widget's palette
        widget.setStyleSheet(sheet)


def on_change(slot: object) -> None:
    """Call `slot()` after each application palette change. Pass a bound method of a QObject:
    the connection then ends with that object."""
    _watcher().changed.connect(slot)


class _Watcher(QWidget):
    """One per application, never shown: re-styles what follows the theme. `apply` calls
    `restyle` at once; a palette the platform changes by itself arrives as the
    ApplicationPaletteChange Qt posts to every widget, this one included. (Not an event
    filter on the application: that would see every event of every object, and make
    Python wrap each one, at start-up and forever.)"""

    changed = Signal()

    def __init__(self) -> None:
        super().__init__()
        self._styled_for: Colours | None = None

    def event(self, event: QEvent) -> bool:
        # Our own `apply` posts these too, after it re-styled: only new colours re-style.
        if event.type() == QEvent.Type.ApplicationPaletteChange and colours() != self._styled_for:
            self.restyle()
        return super().event(event)

    def restyle(self) -> None:
        current = self._styled_for = colours()
        for widget in QApplication.allWidgets():
            template = widget.property(_TEMPLATE_PROPERTY)
            if isinstance(template, str):
                _apply_template(widget, template, current)
        self.changed.emit()

    def scheme_changed(self, _scheme: object) -> None:
        """The system went light or dark: follow it when the person chose System."""
        app = QApplication.instance()
        if _state.get("choice") == "system" and isinstance(app, QApplication):
            apply(app, "system")


_state: dict[str, object] = {}


def _watcher() -> _Watcher:
    app = QApplication.instance()
    watcher = _state.get("watcher")
    if isinstance(watcher, _Watcher) and _state.get("app") is app:
        return watcher
    assert app is not None, "a QApplication must exist before views are styled"
    watcher = _Watcher()
    if hasattr(app.styleHints(), "colorSchemeChanged"):
        app.styleHints().colorSchemeChanged.connect(watcher.scheme_changed)
    _state.update(watcher=watcher, app=app)
    return watcher


# the Light / Dark / System choice ----------------------------------------------------


def _palette(roles: dict[QPalette.ColorRole, str], disabled: dict[QPalette.ColorRole, str]) -> QPalette:
    palette = QPalette()
    for role, name in roles.items():
        for group in (QPalette.ColorGroup.Active, QPalette.ColorGroup.Inactive, QPalette.ColorGroup.Disabled):
            palette.setColor(group, role, QColor(name))
    for role, name in disabled.items():
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor(name))
    return palette


_R = QPalette.ColorRole


def dark_palette() -> QPalette:
    """A complete dark palette for Fusion, its Disabled group included (so disabled buttons
    and fields look disabled, not just like the enabled ones)."""
    return _palette(
        {_R.Window: "#2b2b2b", _R.WindowText: "#e8e8e8", _R.Base: "#1f1f1f", _R.AlternateBase: "#292929",
         _R.Text: "#e8e8e8", _R.PlaceholderText: "#9a9a9a", _R.Button: "#353535", _R.ButtonText: "#e8e8e8",
         _R.BrightText: "#ff7b72", _R.Light: "#4a4a4a", _R.Midlight: "#3e3e3e", _R.Mid: "#242424",
         _R.Dark: "#1a1a1a", _R.Shadow: "#0b0b0b", _R.Highlight: "#3d7bd9", _R.HighlightedText: "#ffffff",
         _R.Link: "#8ab4f8", _R.LinkVisited: "#c58af9", _R.ToolTipBase: "#3a3a3a", _R.ToolTipText: "#e8e8e8",
         _R.Accent: "#3d7bd9"},
        {_R.WindowText: "#7d7d7d", _R.Text: "#7d7d7d", _R.ButtonText: "#7d7d7d", _R.PlaceholderText: "#5f5f5f",
         _R.Base: "#262626", _R.Button: "#2f2f2f", _R.Highlight: "#4a4a4a", _R.HighlightedText: "#9a9a9a",
         _R.Link: "#5f7aa6", _R.Accent: "#4a4a4a"},
    )


def light_palette() -> QPalette:
    """Fusion's light palette, written out: Fusion's standardPalette() follows the system's
    dark scheme on some platforms, and Light must stay light there."""
    return _palette(
        {_R.Window: "#efefef", _R.WindowText: "#000000", _R.Base: "#ffffff", _R.AlternateBase: "#f7f7f7",
         _R.Text: "#000000", _R.PlaceholderText: "#6e6e6e", _R.Button: "#efefef", _R.ButtonText: "#000000",
         _R.BrightText: "#ffffff", _R.Light: "#ffffff", _R.Midlight: "#cacaca", _R.Mid: "#b8b8b8",
         _R.Dark: "#9f9f9f", _R.Shadow: "#767676", _R.Highlight: "#308cc6", _R.HighlightedText: "#ffffff",
         _R.Link: "#0000ee", _R.LinkVisited: "#551a8b", _R.ToolTipBase: "#ffffdc", _R.ToolTipText: "#000000",
         _R.Accent: "#308cc6"},
        {_R.WindowText: "#8c8c8c", _R.Text: "#8c8c8c", _R.ButtonText: "#8c8c8c", _R.PlaceholderText: "#b4b4b4",
         _R.Base: "#efefef", _R.Highlight: "#919191", _R.HighlightedText: "#ffffff", _R.Accent: "#919191"},
    )


def apply(app: QCoreApplication, choice: str, system: str = "") -> None:
    """Apply "light", "dark" or "system" (anything else counts as system) now; every view
    re-renders through `on_change`. Without widgets (a QCoreApplication) there is nothing
    to colour.

    For System, `system` ("light" or "dark": what `system_scheme()` said at the last launch)
    stands in for asking the platform, which before the first paint would build the whole
    `Qt` enum namespace (13 ms, desktop.qt.properties); the launch asks once the window is
    on screen and applies System again if the answer changed (desktop/app.py)."""
    if not isinstance(app, QApplication):
        return
    choice = choice if choice in CHOICES else DEFAULT_CHOICE
    watcher = _watcher()
    _state["choice"] = choice
    hints = app.styleHints()
    if hasattr(hints, "setColorScheme"):  # Qt 6.8+: native dialogs and title bars follow too
        if choice == "system":
            hints.unsetColorScheme()
        else:
            set_properties(hints, colorScheme=CHOICES[choice])  # "Light" or "Dark"
    if choice == "system":
        if "platform_style" in _state:  # Light or Dark chose Fusion before: back to Qt's own
            _set_style(app, str(_state["platform_style"]))
        app.setPalette(QPalette())  # resolves to the platform theme's palette
        system_dark = (system if system in ("light", "dark") else system_scheme(app)) == "dark"
        if system_dark and app.palette().color(QPalette.ColorRole.Window).lightnessF() >= 0.5:
            # the platform says dark but its style paints light: Fusion can do dark everywhere
            _set_style(app, "Fusion")
            app.setPalette(dark_palette())
    else:
        _set_style(app, "Fusion")
        app.setPalette(dark_palette() if choice == "dark" else light_palette())
    watcher.restyle()


def system_scheme(app: QGuiApplication) -> str:
    """"dark" when the platform says it is dark, else "light" (also when it does not say)."""
    from PySide6.QtCore import Qt  # once the window is on screen (see `apply`)

    return "dark" if app.styleHints().colorScheme() == Qt.ColorScheme.Dark else "light"


def _set_style(app: QApplication, name: str) -> None:
    # The style Qt chose is remembered for System before the first change. (Only then:
    # asking for app.style() makes Python wrap QStyle and its many enums, 10+ ms at start-up.)
    _state.setdefault("platform_style", app.style().name())
    if app.style().name().lower() != name.lower():
        app.setStyle(name)


def current_choice() -> str:
    """The choice last applied ("system" before any)."""
    return str(_state.get("choice", DEFAULT_CHOICE))
