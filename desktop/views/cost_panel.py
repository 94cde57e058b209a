"""The cost panel: month to date and forecast, budgets, a live estimate, daily spend chart.

Everything comes from the Qt-free CostService through the runner. A QTimer refreshes the
panel every few minutes, but Cost Explorer is only asked when its cached answer is an hour
old (each request costs $0.01); the refresh button asks now and says what that costs.
QtCharts is not part of PySide6-Essentials, so the chart is painted with QPainter.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from PySide6.QtCore import QPointF, QRectF, Qt, QTimer
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPaintEvent, QPen
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from backend.core.pricing import Estimate
from desktop.qt.runner import Runner
from desktop.services.cost import (
    BudgetState,
    CostError,
    CostReport,
    CostService,
    LiveEstimate,
    cache_file_for,
    days_in_month,
    month_start,
)
from desktop.views import theme
from desktop.views.screen_fit import resize_within_screen

TICK_MS = 5 * 60 * 1000


class SpendChart(QWidget):
    """Daily spend as bars, the month's running total as a line, the caps as dashed lines."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumHeight(190)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.daily: list[tuple[str, float]] = []
        self.days_in_month = 30
        self.caps: list[tuple[str, float, str]] = []  # (label, value, the theme's colour name)

    def set_data(self, daily: list[tuple[str, float]], days_in_month: int,
                 warning: float | None, cap: float | None) -> None:
        self.daily = daily
        self.days_in_month = days_in_month
        self.caps = [(f"warning ${warning:g}", warning, "chart_warning")] if warning else []
        if cap:
            self.caps.append((f"hard cap ${cap:g}", cap, "chart_cap"))
        self.update()

    def paintEvent(self, _event: QPaintEvent) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        c = theme.colours()  # at paint time: a palette change repaints in the new colours
        p.fillRect(self.rect(), QColor(c.base))
        left, right, top, bottom = 48, 12, 26, 24
        area = QRectF(left, top, max(1, self.width() - left - right), max(1, self.height() - top - bottom))
        totals: list[float] = []
        running = 0.0
        for _day, amount in self.daily:
            running += amount
            totals.append(running)
        top_value = max([*totals, *(v for _n, v, _c in self.caps), 1.0]) * 1.1
        y = lambda v: area.bottom() - v / top_value * area.height()  # noqa: E731
        slot = area.width() / self.days_in_month

        p.setPen(QPen(QColor(c.chart_grid), 1))
        p.setFont(self.font())
        for i in range(5):
            value = top_value * i / 4
            p.drawLine(QPointF(area.left(), y(value)), QPointF(area.right(), y(value)))
            p.setPen(QColor(c.muted))
            right_middle = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
            p.drawText(QRectF(0, y(value) - 8, left - 6, 16), right_middle,
                       f"${value:.0f}" if top_value >= 10 else f"${value:.2f}")
            p.setPen(QPen(QColor(c.chart_grid), 1))
        for day in (1, 8, 15, 22, 29):
            if day <= self.days_in_month:
                p.setPen(QColor(c.muted))
                p.drawText(QRectF(area.left() + (day - 1) * slot, area.bottom() + 4, 30, 16),
                           Qt.AlignmentFlag.AlignLeft, str(day))

        for day_text, amount in self.daily:
            day = int(day_text[-2:])
            bar = QRectF(area.left() + (day - 1) * slot + slot * 0.15, y(amount), slot * 0.7, area.bottom() - y(amount))
            p.fillRect(bar, QColor(c.chart_bar))
        if totals:
            path = QPainterPath()
            for i, ((day_text, _a), total) in enumerate(zip(self.daily, totals, strict=True)):
                point = QPointF(area.left() + (int(day_text[-2:]) - 0.5) * slot, y(total))
                path.moveTo(point) if i == 0 else path.lineTo(point)
            p.setPen(QPen(QColor(c.chart_line), 2))
            p.drawPath(path)
        for name, value, colour in self.caps:
            pen = QPen(QColor(getattr(c, colour)), 1.5, Qt.PenStyle.DashLine)
            p.setPen(pen)
            p.drawLine(QPointF(area.left(), y(value)), QPointF(area.right(), y(value)))
            p.drawText(QRectF(area.left() + 4, y(value) - 16, 200, 14), Qt.AlignmentFlag.AlignLeft, name)
        p.setPen(QColor(c.text))
        p.drawText(QRectF(area.left(), 4, area.width(), 16), Qt.AlignmentFlag.AlignRight,
                   "bars: daily spend · line: month so far · dashed: budget")
        p.end()


@dataclass
class Snapshot:
    """One refresh's findings; each part may be missing with its error in words."""

    report: CostReport | None = None
    budgets: list[BudgetState] = field(default_factory=list)
    estimate: Estimate | None = None
    live: LiveEstimate | None = None
    errors: list[str] = field(default_factory=list)


DEFAULT_CREDENTIALS = "(default credentials)"


class CostPanel(QDialog):
    """What TinyLlama costs this month. `refresh()` on open and every `tick_ms`.

    With `profiles` and `service_for`, a picker switches the AWS profile: the panel builds
    the new profile's service, calls `profile_chosen` (which remembers it) and refreshes."""

    def __init__(self, service: CostService, runner: Runner, *, stack_name: str = "", instance_id: str = "",
                 budget_prefix: str = "", warning_usd: float = 0.0, hard_cap_usd: float = 0.0,
                 prompt_seconds: Callable[[], list[float]] = list, tick_ms: int = TICK_MS,
                 profiles: list[str] | None = None, profile: str = "",
                 service_for: Callable[[str], CostService] | None = None,
                 profile_chosen: Callable[[str], None] = lambda _name: None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("TinyLlama costs")
        resize_within_screen(self, 820, 640)
        self.service, self.runner = service, runner
        self.stack_name, self.instance_id, self.budget_prefix = stack_name, instance_id, budget_prefix
        self.warning_usd, self.hard_cap_usd = warning_usd, hard_cap_usd
        self.prompt_seconds = prompt_seconds
        self.snapshot: Snapshot | None = None
        self._busy = False
        self._generation = 0  # bumped on a profile switch: an answer for the old one is dropped
        self.service_for, self.profile_chosen = service_for, profile_chosen
        self.profile = QComboBox()
        self.profile.setObjectName("aws_profile")
        self.profile.setToolTip("The AWS profile (from ~/.aws) whose account the panel shows. Only its name is "
                                "saved; the keys stay in ~/.aws.")
        self.profile.addItem(DEFAULT_CREDENTIALS, "")
        for name in profiles or []:
            self.profile.addItem(name, name)
        if profile and self.profile.findData(profile) < 0:
            self.profile.addItem(f"{profile} (not in ~/.aws)", profile)
        self.profile.setCurrentIndex(max(0, self.profile.findData(profile)))
        self.profile.setEnabled(service_for is not None)

        self.total = QLabel("Month to date: …")
        self.total.setObjectName("mtd")
        self.total.setStyleSheet("font-size: 18px; font-weight: bold;")
        self.forecast = QLabel()
        self.forecast.setObjectName("forecast")
        self.fetched = QLabel()
        self.fetched.setObjectName("fetched")
        theme.styled(self.fetched, "color: $muted;")
        self.refresh_button = QPushButton("Refresh now")
        self.refresh_button.setToolTip("Asks Cost Explorer now; each request costs $0.01. The panel asks by itself "
                                       "at most once an hour.")
        self.live = QLabel()
        self.live.setObjectName("live")
        self.live.setWordWrap(True)
        self.guard = QLabel()
        self.guard.setObjectName("guard")
        self.guard.setWordWrap(True)
        theme.styled(self.guard, "background: $error_bg; color: $text; border: 1px solid $error_border; padding: 6px;")
        self.guard.setVisible(False)
        self.errors = QLabel()
        self.errors.setObjectName("errors")
        self.errors.setWordWrap(True)
        theme.styled(self.errors, "color: $error;")
        self.chart = SpendChart(self)
        self.warning_bar = QProgressBar()
        self.cap_bar = QProgressBar()
        self.warning_text = QLabel()
        self.cap_text = QLabel()
        self.cap_text.setObjectName("cap_state")
        self.services = QTableWidget(0, 2)
        self.services.setObjectName("services")
        self.services.setHorizontalHeaderLabels(["Service", "Month to date"])
        self.services.verticalHeader().setVisible(False)
        self.services.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.services.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.services.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)

        pick = QHBoxLayout()
        pick.addWidget(QLabel("AWS profile"))
        pick.addWidget(self.profile)
        pick.addStretch(1)
        head = QHBoxLayout()
        figures = QVBoxLayout()
        figures.addWidget(self.total)
        figures.addWidget(self.forecast)
        figures.addWidget(self.fetched)
        head.addLayout(figures, 1)
        head.addWidget(self.refresh_button, 0, Qt.AlignmentFlag.AlignTop)
        budgets = QGroupBox("Budget")
        grid = QGridLayout(budgets)
        grid.addWidget(QLabel("Warning"), 0, 0)
        grid.addWidget(self.warning_bar, 0, 1)
        grid.addWidget(self.warning_text, 0, 2)
        grid.addWidget(QLabel("Hard cap"), 1, 0)
        grid.addWidget(self.cap_bar, 1, 1)
        grid.addWidget(self.cap_text, 1, 2)
        grid.setColumnStretch(1, 1)
        lower = QHBoxLayout()
        lower.addWidget(self.services, 3)
        live_box = QGroupBox("Since the last fetch")
        live_layout = QVBoxLayout(live_box)
        live_layout.addWidget(self.live)
        live_layout.addStretch(1)
        lower.addWidget(live_box, 2)
        layout = QVBoxLayout(self)
        layout.addLayout(pick)
        layout.addLayout(head)
        layout.addWidget(self.guard)
        layout.addWidget(self.errors)
        layout.addWidget(self.chart, 3)
        layout.addWidget(budgets)
        layout.addLayout(lower, 2)

        self.timer = QTimer(self)
        self.timer.setInterval(tick_ms)
        self.timer.timeout.connect(self.refresh)
        self.refresh_button.clicked.connect(lambda: self.refresh(force=True))
        self.profile.currentIndexChanged.connect(self._profile_changed)
        self.timer.start()
        self.refresh()

    def _profile_changed(self) -> None:
        if self.service_for is None:
            return
        name = str(self.profile.currentData() or "")
        self.service = self.service_for(name)
        self.profile_chosen(name)
        self._generation += 1
        self.snapshot = None
        self.total.setText("Month to date: …")
        self.errors.setText("")
        self.refresh()  # when one is in flight, its answer is dropped and this refresh follows

    def set_guard_refusal(self, text: str) -> None:
        """Show the budget guard's refusal (the API's BudgetExceededError) at the top."""
        self.guard.setText(f"The budget guard refused to wake the GPU: {text}" if text else "")
        self.guard.setVisible(bool(text))

    def refresh(self, force: bool = False) -> None:
        """Gather everything off the UI thread; Cost Explorer only when due (or forced)."""
        if self._busy:
            return
        self._busy = True
        generation = self._generation
        self.refresh_button.setEnabled(False)
        service, stack, instance, prefix = self.service, self.stack_name, self.instance_id, self.budget_prefix
        prompts = self.prompt_seconds()

        def gather() -> Snapshot:
            snap = Snapshot()
            try:
                snap.report = service.report(force=force)
            except CostError as exc:
                snap.errors.append(str(exc))
                snap.report = service.cached()
            try:
                snap.budgets = service.budgets(prefix) if prefix else []
            except CostError as exc:
                snap.errors.append(str(exc))
            try:
                snap.estimate = service.stack_estimate(stack)
            except CostError as exc:
                snap.errors.append(str(exc))
            if snap.report is not None and snap.estimate is not None:
                try:
                    hours = service.gpu_hours_since(instance, snap.report.fetched_at)
                except CostError as exc:
                    snap.errors.append(str(exc))
                    hours = 0.0
                snap.live = service.live_estimate(snap.report, snap.estimate, hours, prompts)
            return snap

        self.runner.run(gather, lambda snap: self._show(snap, generation), lambda exc: self._failed(exc, generation))

    def _stale(self, generation: int) -> bool:
        """The answer is for a profile no longer chosen: drop it and ask for the new one."""
        self._busy = False
        self.refresh_button.setEnabled(True)
        if generation == self._generation:
            return False
        self.refresh()
        return True

    def _failed(self, exc: BaseException, generation: int) -> None:
        if self._stale(generation):
            return
        self.errors.setText(str(exc))

    def _show(self, snap: Snapshot, generation: int) -> None:
        if self._stale(generation):
            return
        self.snapshot = snap
        self.errors.setText("\n".join(snap.errors))
        now = self.service.clock()
        today = datetime.fromtimestamp(now, UTC).date()
        report = snap.report
        cap_budget = next((b for b in snap.budgets if b.limit_usd == self.hard_cap_usd), None) or (
            snap.budgets[0] if snap.budgets else None)
        cap = cap_budget.limit_usd if cap_budget else self.hard_cap_usd
        if report is None:
            self.total.setText("Month to date: not fetched yet")
        else:
            self.total.setText(f"Month to date: ${report.total_usd:.2f}")
            fetched = datetime.fromtimestamp(report.fetched_at, UTC)
            minutes = int((now - report.fetched_at) // 60)
            due = max(0, int(self.service.next_fetch_in() // 60))
            self.fetched.setText(f"From Cost Explorer at {fetched:%H:%M} UTC ({minutes} min ago); next automatic "
                                 f"fetch in {due} min. Cost Explorer lags by up to a day.")
            if cap_budget and cap_budget.forecast_usd is not None:
                self.forecast.setText(f"Forecast for {today:%B}: ${cap_budget.forecast_usd:.2f} (AWS Budgets)")
            else:
                self.forecast.setText(f"Forecast for {today:%B}: ${report.projected_month_usd(today):.2f} "
                                      "(projected from the last 7 days)")
            self.chart.set_data(report.daily, days_in_month(today), self.warning_usd or None, cap or None)
            self.services.setRowCount(len(report.by_service))
            for row, (name, usd) in enumerate(report.by_service.items()):
                self.services.setItem(row, 0, QTableWidgetItem(name))
                amount = QTableWidgetItem(f"${usd:.2f}")
                amount.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.services.setItem(row, 1, amount)
        spent = cap_budget.actual_usd if cap_budget else (report.total_usd if report else 0.0)
        self._bar(self.warning_bar, self.warning_text, spent, self.warning_usd, "warning")
        self._bar(self.cap_bar, self.cap_text, spent, cap, "hard cap")
        if snap.live is not None and snap.estimate is not None:
            live, est = snap.live, snap.estimate
            prompts = ""
            if live.per_prompt_usd:
                mean = sum(live.per_prompt_usd) / len(live.per_prompt_usd)
                prompts = f"<br>Prompts this month: {len(live.per_prompt_usd)}, about ${mean:.4f} each in GPU time."
            self.live.setText(
                f"<b>Now about ${live.total_usd:.2f}</b><br>"
                f"GPU: {live.gpu_hours_since:.2f} h × ${est.per_gpu_hour_usd:.3f} = ${live.gpu_usd_since:.2f}<br>"
                f"Fixed costs (${est.idle_monthly_usd:.2f}/month): ${live.fixed_usd_since:.2f}{prompts}")

    def _bar(self, bar: QProgressBar, text: QLabel, spent: float, limit: float, name: str) -> None:
        if limit <= 0:
            bar.setEnabled(False)
            bar.setValue(0)
            text.setText("not set")
            return
        bar.setEnabled(True)
        bar.setRange(0, 100)
        bar.setValue(min(100, int(spent / limit * 100)))
        passed = spent >= limit
        colour = "$bar_over" if passed else "$bar_ok"
        theme.styled(bar, "QProgressBar { border: 1px solid $border; border-radius: 3px; text-align: center; } "
                     f"QProgressBar::chunk {{ background: {colour}; }}")
        text.setText(f"${spent:.2f} of ${limit:.2f}" + (f" — {name} reached" if passed else ""))

    def done(self, result: int) -> None:
        self.timer.stop()
        super().done(result)


def open_cost_panel(settings: object, runner: Runner, parent: QWidget | None = None,
                    history: object | None = None, clock: Callable[[], float] = time.time) -> CostPanel:
    """Build the panel for the AWS profile in `settings` (the real clients, from its AWS profile).

    `clock` (epoch seconds) decides which month "this month" is, for Cost Explorer and for
    the prompts counted from `history`."""
    import boto3
    from botocore.exceptions import ProfileNotFound

    from desktop.core.settings import Settings
    from desktop.services.aws_profiles import available_profiles

    assert isinstance(settings, Settings)
    aws = settings.section("aws")

    def service_for(profile: str) -> CostService:
        try:
            session = boto3.session.Session(profile_name=profile or None, region_name=aws["region"] or None)
        except ProfileNotFound:  # removed from ~/.aws: the default chain, and its errors in words
            logging.getLogger(__name__).warning("AWS profile %r not found; using the default credentials", profile)
            session = boto3.session.Session(region_name=aws["region"] or None)
        return CostService(cache_file=cache_file_for(settings.path.parent, profile), session=session,
                           region=aws["region"] or None, clock=clock)

    def remember(profile: str) -> None:
        settings.set("aws.aws_profile", profile)  # the name only; keys stay in ~/.aws
        settings.save()

    service = service_for(aws["aws_profile"])

    def prompt_seconds() -> list[float]:
        if history is None:
            return []
        start = month_start(clock())
        seconds = []
        for conv in history.conversations():  # type: ignore[attr-defined]
            for msg in history.messages(conv.id):  # type: ignore[attr-defined]
                if msg.role == "assistant" and msg.total_s and msg.created_at >= start:
                    seconds.append(float(msg.total_s))
        return seconds

    return CostPanel(service, runner, stack_name=aws["stack_name"], instance_id=aws["instance_id"],
                     budget_prefix=aws["budget_name"] or aws["stack_name"], warning_usd=float(aws["warning_usd"]),
                     hard_cap_usd=float(aws["hard_cap_usd"]), prompt_seconds=prompt_seconds,
                     profiles=available_profiles(), profile=aws["aws_profile"], service_for=service_for,
                     profile_chosen=remember, parent=parent)
