"""Wizard page 4: what will change, as a table, before anything runs.

A deploy creates a CloudFormation change set and lists its rows (add, modify — with
replacement flagged — and remove); a delete lists every resource it removes and warns about
the data bucket. This is the commit page: after it there is no going back.
"""

from __future__ import annotations

from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWizardPage,
)

from desktop.services.deploy import flow
from desktop.services.deploy.changes import ChangeRow, ChangeSetReview
from desktop.views import theme
from desktop.views.wizard.context import WizardContext, in_words

# Each change's row background, as a theme colour (a Colours field name).
COLOURS = {"Add": "success_bg", "Modify": "warning_bg", "Replace": "error_bg", "Remove": "error_bg"}


def _label(row: ChangeRow) -> str:
    if row.action != "Modify":
        return row.action
    return {"True": "Replace", "Conditional": "Modify (may replace)"}.get(row.replacement, "Modify")


class ReviewPage(QWizardPage):
    """The change set (or delete plan) as rows; Next runs it."""

    def __init__(self, ctx: WizardContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.setTitle("Review")
        self.setSubTitle("Nothing has changed yet. This is what CloudFormation will do; the button below runs it.")
        self.setCommitPage(True)
        self.summary = QLabel("Preparing the change set…")
        self.summary.setObjectName("review_summary")
        self.summary.setWordWrap(True)
        self.table = QTableWidget(0, 4)
        self.table.setObjectName("changes")
        self.table.setHorizontalHeaderLabels(["Action", "Resource", "Type", "Changes"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.warning = QLabel()
        self.warning.setObjectName("data_warning")
        self.warning.setWordWrap(True)
        theme.styled(self.warning, "background: $warning_bg; color: $warning_text; border: 1px solid "
                     "$warning_border; padding: 6px;")
        self.warning.setVisible(False)
        self.empty_bucket = QCheckBox("Empty the data bucket first (its chat data is lost for good)")
        self.empty_bucket.setVisible(False)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.warning)
        layout.addWidget(self.empty_bucket)
        self._ready = False

    def initializePage(self) -> None:
        ctx = self.ctx
        assert ctx.deployer is not None
        self._ready = False
        self.table.setRowCount(0)
        self.completeChanged.emit()
        deployer, name = ctx.deployer, ctx.stack_name
        if ctx.action == "delete":
            self.setButtonText(self.wizard().WizardButton.CommitButton, "Delete")
            self.summary.setText(f"Reading what {name} contains…")

            ctx.runner.run(lambda: flow.plan_delete(deployer, name), self._delete_planned, self._failed)
            return
        self.setButtonText(self.wizard().WizardButton.CommitButton, "Deploy")
        assert ctx.uploaded is not None
        uploaded, current, chosen = ctx.uploaded, dict(ctx.existing_parameters), ctx.options.parameters()
        template_text = ctx.builders.templates[ctx.options.template].read_text(encoding="utf-8")
        self.summary.setText("Creating a change set: CloudFormation works out what would change…")

        def review() -> ChangeSetReview:
            return flow.review(deployer, name, template_text, uploaded, current=current, chosen=chosen)

        ctx.runner.run(review, self._reviewed, self._failed)

    def _reviewed(self, review: ChangeSetReview) -> None:
        ctx = self.ctx
        ctx.review = review
        self._fill(review.rows)
        adds = sum(r.action == "Add" for r in review.rows)
        mods = sum(r.action == "Modify" for r in review.rows)
        repl = sum(r.action == "Modify" and r.replaces for r in review.rows)
        removes = sum(r.action == "Remove" for r in review.rows)
        if review.change_type == "UPDATE" and not review.rows:
            if review.no_changes:
                self.summary.setText("No changes: the stack already matches these options. Go back to change "
                                     "them, or cancel.")
            else:
                self.summary.setText(f"<b>Update {review.stack_name}</b> without a change set: the changes show "
                                     "as CloudFormation makes them.")
        else:
            verb = "Create" if review.change_type == "CREATE" else "Update"
            self.summary.setText(f"<b>{verb} {review.stack_name}</b>: {adds} to add, {mods} to change "
                                 f"({repl} replaced), {removes} to remove.")
        if repl:
            self.warning.setText("Replaced resources are deleted and made anew: a replaced GPU instance loses its "
                                 "cached model, replaced Redis loses queued prompts.")
            self.warning.setVisible(True)
        self._ready = True
        self.completeChanged.emit()

    def _delete_planned(self, result: tuple[ChangeSetReview, str]) -> None:
        review, bucket = result
        self.ctx.review, self.ctx.data_bucket = review, bucket
        self._fill(review.rows)
        self.summary.setText(f"<b>Delete {review.stack_name}</b>: {len(review.rows)} resources are removed.")
        if bucket:
            self.warning.setText(f"The data bucket <b>{bucket}</b> holds the stack's data. CloudFormation cannot "
                                 "delete a bucket that is not empty: empty it here, or copy what you need first.")
            self.warning.setVisible(True)
            self.empty_bucket.setVisible(True)
        self._ready = True
        self.completeChanged.emit()

    def _fill(self, rows: list[ChangeRow]) -> None:
        self.table.setRowCount(len(rows))
        for i, row in enumerate(rows):
            label = _label(row)
            cells = [label, row.logical_id, row.resource_type, row.scope]
            c = theme.colours()
            colour = QBrush(QColor(getattr(c, COLOURS.get(label.split(" ")[0], "warning_bg"))))
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setBackground(colour)
                if j == 0 and row.replaces:
                    item.setForeground(QBrush(QColor(c.error)))
                    item.setToolTip("The resource is deleted and created anew")
                self.table.setItem(i, j, item)
        self.table.resizeColumnsToContents()

    def _failed(self, exc: BaseException) -> None:
        theme.styled(self.summary, "color: $error;")
        self.summary.setText(f"{in_words(exc)}\nGo back to change the options, or cancel.")

    def isComplete(self) -> bool:
        review = self.ctx.review
        if not self._ready or review is None:
            return False
        return not review.no_changes

    def validatePage(self) -> bool:
        self.ctx.empty_data_bucket = self.empty_bucket.isVisible() and self.empty_bucket.isChecked()
        return True

    def cleanupPage(self) -> None:
        """Going back: the unexecuted change set is deleted, not left behind."""
        review, deployer = self.ctx.review, self.ctx.deployer
        self.ctx.review = None
        self.warning.setVisible(False)
        self.empty_bucket.setVisible(False)
        if review is not None and deployer is not None and review.change_set_id:
            self.ctx.runner.run(lambda: flow.discard(deployer, review))
