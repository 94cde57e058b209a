"""Wizard page 2: what to deploy, and what it costs while nobody uses it, line by line.

The cost table is backend/core/pricing.py's estimate of the options as they stand; it is
recomputed on every change, before anything exists. The page can be seen before any
credentials are checked (the Account page's "Options and costs first"): everything but
the image list needs no AWS, and Next waits for a checked account.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
    QWizardPage,
)

from desktop.core.deploy_options import EGRESS_MODES, INSTANCE_TYPES, REDIS_MODES, DeployOptions
from desktop.services.deploy.errors import DeployError
from desktop.services.images import (
    STOCK_CHOICE,
    ImageChoice,
    WorkerImage,
    image_choices,
    list_baked_images,
    stock_volume_gib,
)
from desktop.views import theme
from desktop.views.wizard.context import WizardContext

SIGN_IN_FOR_IMAGES = "Sign in on the Account page to list the images your pipeline baked."
BAKE_HOW = ("To bake one, deploy infra/pipeline.yaml: Image Builder builds on a g4dn.xlarge "
            "($0.526/h while it builds) and keeps the image's snapshot ($0.05/GB-month).")


VOLUME_ROLE = Qt.ItemDataRole.UserRole + 1  # an image choice's root snapshot size, GiB
VOLUME_MIN_GIB = 30  # infra/stack.yaml's RootVolumeGiB MinValue


class OptionsPage(QWizardPage):
    """The form on the left, the idle-month estimate on the right."""

    def __init__(self, ctx: WizardContext, signed_in: Callable[[], bool] = lambda: True) -> None:
        super().__init__()
        self.ctx = ctx
        self.signed_in = signed_in  # the Account page's check passed for the values shown there
        self._images_for: tuple[str, int] | None = None  # (region, id of the session) listed
        self.setTitle("Options")
        self.setSubTitle("The cheap choices are preselected. The estimate on the right is what the stack costs "
                         "per month with zero prompts.")
        o = DeployOptions(alert_email=str(ctx.settings.get("aws.username") or "") if "@" in str(
            ctx.settings.get("aws.username") or "") else "")
        self.template = QComboBox()
        self.template.addItem("Full stack (GPU, queue, sign-in)", "stack")
        self.template.addItem("MVP (Lambda only, echo)", "mvp")
        self.instance_type = QComboBox()
        self.instance_type.addItems(INSTANCE_TYPES)
        self.volume = QSpinBox(minimum=VOLUME_MIN_GIB, maximum=1000, value=o.root_volume_gib, suffix=" GiB")
        self.redis = QComboBox()
        for value, label in REDIS_MODES.items():
            self.redis.addItem(label, value)
        self.redis.setCurrentIndex(self.redis.findData(o.redis_mode))
        self.egress = QComboBox()
        for value, label in EGRESS_MODES.items():
            self.egress.addItem(label, value)
        self.dashboard = QCheckBox("CloudWatch dashboard")
        self.warning = QDoubleSpinBox(minimum=1, maximum=10000, value=o.warning_eur, suffix=" EUR", decimals=0)
        self.cap = QDoubleSpinBox(minimum=1, maximum=10000, value=o.hard_cap_eur, suffix=" EUR", decimals=0)
        self.rate = QDoubleSpinBox(minimum=0.01, maximum=10, value=o.eur_usd, decimals=4, singleStep=0.01)
        self.rate.setPrefix("1 EUR = ")
        self.rate.setSuffix(" USD")
        self.usd = QLabel()
        self.email = QLineEdit(o.alert_email, placeholderText="you@example.com")
        self.model = QLineEdit(o.model)
        self.connection = QLineEdit(placeholderText="optional: arn:aws:codeconnections:…:connection/…")
        self.connection.setObjectName("connection")
        self.connection.setToolTip("A CodeConnections connection to GitHub (AWS console: Developer Tools → "
                                   "Settings → Connections). Without one the MVP has no build project; "
                                   "add one later by updating the stack.")
        self.repo = QLineEdit(placeholderText="https://github.com/you/tinyllama")
        self.store_prompts = QCheckBox("Keep every POST / body in the data bucket (costs S3 requests; the URL "
                                       "is public)")
        self.store_prompts.setObjectName("store_prompts")
        self.image = QComboBox()
        self.image.setObjectName("image")
        self.image_note = QLabel(SIGN_IN_FOR_IMAGES)
        self.image_note.setObjectName("image_note")
        self.image_note.setWordWrap(True)
        theme.styled(self.image_note, "color: $muted;")
        self._set_choices([STOCK_CHOICE])
        self.preview_note = QLabel("Preview: nothing here needs AWS. To deploy, go Back and check the account.")
        self.preview_note.setObjectName("preview_note")
        self.preview_note.setWordWrap(True)
        theme.styled(self.preview_note, "background: $warning_bg; color: $warning_text; "
                     "border: 1px solid $warning_border; padding: 4px;")
        self.preview_note.setVisible(False)

        form = QFormLayout()
        form.addRow("Template", self.template)
        form.addRow("GPU instance", self.instance_type)
        form.addRow("Volume", self.volume)
        form.addRow("Redis", self.redis)
        form.addRow("Egress", self.egress)
        form.addRow("", self.dashboard)
        form.addRow("Budget warning", self.warning)
        form.addRow("Hard cap (GPU stops)", self.cap)
        form.addRow("Exchange rate", self.rate)
        form.addRow("", self.usd)
        form.addRow("Alert e-mail", self.email)
        form.addRow("Model", self.model)
        form.addRow("Worker image", self.image)
        form.addRow("", self.image_note)
        form.addRow("Build connection", self.connection)
        form.addRow("Source repository", self.repo)
        form.addRow("", self.store_prompts)
        self.form = form
        self.problems = QLabel()
        self.problems.setWordWrap(True)
        theme.styled(self.problems, "color: $error;")
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.preview_note)
        left_layout.addLayout(form)
        left_layout.addWidget(self.problems)
        left_layout.addStretch(1)

        self.cost_table = QTableWidget(0, 2)
        self.cost_table.setObjectName("cost_table")
        self.cost_table.setHorizontalHeaderLabels(["Idle month", "USD"])
        self.cost_table.verticalHeader().setVisible(False)
        self.cost_table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.cost_table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.cost_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.cost_table.setSelectionMode(QTableWidget.SelectionMode.NoSelection)
        self.cost_table.setWordWrap(False)
        self.cost_table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.cost_table.verticalHeader().setDefaultSectionSize(24)
        self.idle_total = QLabel()
        self.idle_total.setObjectName("idle_total")
        self.gpu_hour = QLabel()
        self.gpu_hour.setObjectName("gpu_hour")
        self.prices_note = QLabel()
        self.prices_note.setWordWrap(True)
        theme.styled(self.prices_note, "color: $muted; font-size: 11px;")
        box = QGroupBox("What it costs")
        box_layout = QVBoxLayout(box)
        box_layout.addWidget(self.cost_table, 1)
        box_layout.addWidget(self.idle_total)
        box_layout.addWidget(self.gpu_hour)
        box_layout.addWidget(self.prices_note)

        layout = QHBoxLayout(self)
        layout.addWidget(left, 4)
        layout.addWidget(box, 5)

        for w in (self.template, self.instance_type, self.redis, self.egress):
            w.currentIndexChanged.connect(self.update_options)
        self.image.currentIndexChanged.connect(self._fit_volume)
        self._kept: tuple[int | None, int | None] = (None, None)
        self.volume.valueChanged.connect(self.update_options)
        for s in (self.warning, self.cap, self.rate):
            s.valueChanged.connect(self._budget_edited)
        self.dashboard.toggled.connect(self.update_options)
        for e in (self.email, self.model, self.repo, self.connection):
            e.textChanged.connect(self.update_options)
        self.store_prompts.toggled.connect(self.update_options)
        self.update_options()

    def initializePage(self) -> None:
        """Updating a stack starts from the values it has, not from the defaults; once an
        account is checked, its baked images are listed."""
        signed_in = self.signed_in() and self.ctx.session is not None
        self.preview_note.setVisible(not signed_in)
        if signed_in:
            self._list_images()
        else:
            self.image_note.setText(SIGN_IN_FOR_IMAGES)
        self.completeChanged.emit()
        p = self.ctx.existing_parameters
        if not p or not signed_in:
            return
        mvp = "BudgetLimitUsd" in p
        self.template.setCurrentIndex(self.template.findData("mvp" if mvp else "stack"))
        rate = self.rate.value()
        kept: tuple[int | None, int | None] = (None, None)
        if mvp:
            self.connection.setText(p.get("SourceConnectionArn", ""))
            self.repo.setText(p.get("SourceRepositoryUrl", ""))
            self.store_prompts.setChecked(p.get("StorePrompts") == "true")
            if p.get("BudgetLimitUsd"):
                kept = (None, int(float(p["BudgetLimitUsd"])))
        else:
            self.instance_type.setCurrentText(p.get("InstanceType", self.instance_type.currentText()))
            self.volume.setValue(int(p.get("RootVolumeGiB", self.volume.value()) or self.volume.value()))
            for combo, key in ((self.redis, "RedisMode"), (self.egress, "EgressMode")):
                index = combo.findData(p.get(key))
                if index >= 0:
                    combo.setCurrentIndex(index)
            self.dashboard.setChecked(p.get("CreateDashboard") == "true")
            self.model.setText(p.get("Model", self.model.text()))
            if p.get("ImageParameter"):
                self._select_parameter(p["ImageParameter"])
            if p.get("WarningUsd") and p.get("HardCapUsd"):
                kept = (int(float(p["WarningUsd"])), int(float(p["HardCapUsd"])))
        self.email.setText(p.get("AlertEmail", self.email.text()))
        self._kept = (None, None)
        if kept[0] is not None:
            self.warning.setValue(round(kept[0] / rate))
        if kept[1] is not None:
            self.cap.setValue(round(kept[1] / rate))
        self._kept = kept  # set last: the spin boxes' own change signals clear it
        self.update_options()

    def _budget_edited(self) -> None:
        self._kept = (None, None)
        self.update_options()

    def options(self) -> DeployOptions:
        """The form as DeployOptions."""
        return DeployOptions(
            template=str(self.template.currentData()), instance_type=self.instance_type.currentText(),
            root_volume_gib=self.volume.value(), redis_mode=str(self.redis.currentData()),
            egress_mode=str(self.egress.currentData()), dashboard=self.dashboard.isChecked(),
            warning_eur=self.warning.value(), hard_cap_eur=self.cap.value(), eur_usd=self.rate.value(),
            alert_email=self.email.text().strip(), model=self.model.text().strip(),
            source_connection_arn=self.connection.text().strip(), source_repository_url=self.repo.text().strip(),
            store_prompts=self.store_prompts.isChecked(), kept_warning_usd=self._kept[0],
            kept_hard_cap_usd=self._kept[1], image_parameter=self._image_parameter())

    def update_options(self) -> None:
        """Show only the fields of the chosen template, and price them."""
        o = self.options()
        stack = o.template == "stack"
        for w in (self.instance_type, self.volume, self.redis, self.egress, self.dashboard, self.model,
                  self.image, self.image_note):
            self.form.setRowVisible(w, stack)
        self.form.setRowVisible(self.warning, stack)
        for w in (self.connection, self.store_prompts):
            self.form.setRowVisible(w, not stack)
        self.form.setRowVisible(self.repo, not stack and bool(o.source_connection_arn))
        self.cap.setPrefix("")
        how = "as deployed now" if self._kept != (None, None) else "whole dollars, rounded down"
        self.usd.setText(f"= warning ${o.warning_usd}, hard cap ${o.hard_cap_usd} ({how})"
                         if stack else f"= budget ${o.hard_cap_usd} ({how})")
        self.ctx.options = o
        problems = o.problems()
        self.problems.setText("\n".join(problems))
        self._show_estimate(o)
        self.completeChanged.emit()

    def _show_estimate(self, o: DeployOptions) -> None:
        try:
            est = o.estimate()
        except ValueError as exc:
            self.cost_table.setRowCount(0)
            self.idle_total.setText(str(exc))
            return
        # The same lines as `tinyllama cost-estimate`: the idle month, then what a GPU hour adds.
        rows = [(line, f"{line.usd:.2f}") for line in est.idle_lines]
        rows += [(line, f"{line.usd:.4f}/h") for line in est.gpu_hour_lines]
        self.cost_table.setRowCount(len(rows))
        for row, (line, text) in enumerate(rows):
            item = QTableWidgetItem(line.item)
            item.setToolTip(line.basis)
            amount = QTableWidgetItem(text)
            amount.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            amount.setToolTip(line.basis)
            self.cost_table.setItem(row, 0, item)
            self.cost_table.setItem(row, 1, amount)
        cap = o.hard_cap_usd
        over = " — more than the hard cap by itself!" if est.idle_monthly_usd > cap else ""
        self.idle_total.setText(f"<b>Idle: ${est.idle_monthly_usd:.2f} / month</b>{over}")
        self.gpu_hour.setText(f"While the GPU runs: ${est.per_gpu_hour_usd:.3f} / hour ({o.instance_type})"
                              if est.gpu_hour_lines else "No GPU: the MVP only echoes.")
        self.prices_note.setText(f"List prices, {est.prices.region}, as of {est.prices.as_of}. "
                                 "Hover a line for how it is worked out.")

    def isComplete(self) -> bool:
        return self.signed_in() and self.ctx.session is not None and not self.options().problems()

    # -- the worker image ---------------------------------------------------------------
    def _set_choices(self, choices: list[ImageChoice], keep: str | None = None) -> None:
        self.image.blockSignals(True)
        self.image.clear()
        model = self.image.model()
        for choice in choices:
            self.image.addItem(f"{choice.label} — {choice.first_wake}", choice.parameter)
            row = self.image.count() - 1
            self.image.setItemData(row, choice.note, Qt.ItemDataRole.ToolTipRole)
            self.image.setItemData(row, choice.volume_gib, VOLUME_ROLE)
            if choice.parameter is None:  # listed so the person sees it exists, not offered
                item = model.item(row) if hasattr(model, "item") else None
                if item is not None:
                    item.setEnabled(False)
        self.image.setCurrentIndex(0 if choices[0].parameter else self.image.findData(STOCK_CHOICE.parameter))
        if keep:
            self._select_parameter(keep)
        self.image.blockSignals(False)

    def _fit_volume(self) -> None:
        """The root volume is at least the chosen image's snapshot: EC2 refuses a smaller
        one when the stack creates the instance, after minutes of creating the rest."""
        needed = self.image.currentData(VOLUME_ROLE)
        self.volume.setMinimum(max(VOLUME_MIN_GIB, int(needed or 0)))  # raises the value with it
        self.volume.setToolTip(f"The chosen image's root snapshot is {needed} GiB: the volume cannot be smaller."
                               if needed else "At least the chosen image's root snapshot (checked once the account "
                               "is: EC2 refuses a smaller volume).")
        self.update_options()

    def _select_parameter(self, parameter: str) -> None:
        index = self.image.findData(parameter)
        if index < 0:  # the stack's own parameter, not one of ours: keep it as deployed
            self.image.addItem(f"As deployed now: {parameter}", parameter)
            index = self.image.count() - 1
        self.image.setCurrentIndex(index)

    def _image_parameter(self) -> str:
        data = self.image.currentData()
        return str(data) if data else str(STOCK_CHOICE.parameter)

    def _list_images(self) -> None:
        session, region = self.ctx.session, self.ctx.region
        key = (region, id(session))
        if self._images_for == key:
            return
        self._images_for = key
        self.image_note.setText(f"Listing the images your pipeline baked in {region}…")
        self.ctx.runner.run(lambda: (list_baked_images(session, region), stock_volume_gib(session, region)),
                            lambda found: self._images_listed(key, *found), lambda exc: self._images_failed(key, exc),
                            owner=self)

    def _images_listed(self, key: tuple[str, int], images: list[WorkerImage], stock_gib: int | None = None) -> None:
        if key != self._images_for:
            return  # an answer for an account or region no longer chosen
        keep = self._image_parameter() if self.ctx.existing_parameters else None
        self._set_choices(image_choices(images, stock_gib), keep)
        self._fit_volume()
        usable = [i for i in images if i.parameter]
        if usable:
            self.image_note.setText(f"{len(images)} baked image(s) in {key[0]}; the newest is preselected.")
        elif images:
            self.image_note.setText("Your pipeline's images are here, but /tinyllama/worker-ami does not name one: "
                                    "run the pipeline again, or use the stock image.")
        else:
            self.image_note.setText(f"No baked image in {key[0]} yet: the stock image installs everything on its "
                                    f"first wake. {BAKE_HOW}")
        self.update_options()

    def _images_failed(self, key: tuple[str, int], exc: BaseException) -> None:
        if key != self._images_for:
            return
        self._images_for = None  # try again next time the page opens
        why = str(exc) if isinstance(exc, DeployError) else "the request failed"
        self.image_note.setText(f"Could not list your baked images ({why}); the stock image is offered.")

    def validatePage(self) -> bool:
        self.ctx.options = self.options()
        return True
