"""The deploy wizard: Account → Options → Upload → Review → Deploy → Done.

Deleting skips Options and Upload. "Options and costs first" on the Account page opens
Options without credentials (the estimate needs no AWS); deploying still needs the check.
The wizard owns no AWS code: the pages call the Qt-free deployer through the shared
runner, so the window stays responsive throughout.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QWidget, QWizard

from desktop.views.screen_fit import resize_within_screen
from desktop.views.wizard.account_page import AccountPage
from desktop.views.wizard.context import WizardContext
from desktop.views.wizard.deploy_page import DeployPage
from desktop.views.wizard.done_page import DonePage
from desktop.views.wizard.options_page import OptionsPage
from desktop.views.wizard.review_page import ReviewPage
from desktop.views.wizard.upload_page import UploadPage

ACCOUNT, OPTIONS, UPLOAD, REVIEW, DEPLOY, DONE = range(6)


class DeployWizard(QWizard):
    """Deploy, update or delete a stack. `sign_in_requested` fires when the person chose
    to switch to the new stack on the last page."""

    sign_in_requested = Signal()

    def __init__(self, ctx: WizardContext, parent: QWidget | None = None,
                 profiles: list[str] | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setWindowTitle("Deploy TinyLlama to AWS")
        self.setWizardStyle(QWizard.WizardStyle.ClassicStyle)
        self.setOption(QWizard.WizardOption.NoBackButtonOnLastPage, True)
        resize_within_screen(self, 900, 620)
        self.account_page = AccountPage(ctx, profiles)
        self.options_page = OptionsPage(ctx, signed_in=self.account_page.isComplete)
        self.upload_page = UploadPage(ctx)
        self.review_page = ReviewPage(ctx)
        self.deploy_page = DeployPage(ctx)
        self.done_page = DonePage(ctx)
        for page_id, page in ((ACCOUNT, self.account_page), (OPTIONS, self.options_page), (UPLOAD, self.upload_page),
                              (REVIEW, self.review_page), (DEPLOY, self.deploy_page), (DONE, self.done_page)):
            self.setPage(page_id, page)
        self.setStartId(ACCOUNT)

    def nextId(self) -> int:
        current = self.currentId()
        if current == ACCOUNT:
            # Unchecked, the only way on is the options preview.
            return REVIEW if self.ctx.action == "delete" and self.account_page.isComplete() else OPTIONS
        if current == DONE:
            return -1
        return current + 1

    def done(self, result: int) -> None:
        """Closing (finish or cancel): stop polling, remove temporary files, maybe sign in."""
        self.deploy_page.shutdown()
        review, deployer = self.ctx.review, self.ctx.deployer
        if review is not None and deployer is not None and review.change_set_id and self.ctx.watcher is None:
            # Closed at the review: the change set (and a create's empty stack) goes too.
            self.ctx.runner.run(lambda: deployer.discard_change_set(review))
        switch = result == QWizard.DialogCode.Accepted and self.done_page.sign_in.isVisible() \
            and self.done_page.sign_in.isChecked()
        if switch:
            self.ctx.settings.set("profile.kind", "aws")
            self.ctx.settings.save()
        self.ctx.close()
        super().done(result)
        if switch:
            self.sign_in_requested.emit()
