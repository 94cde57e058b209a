"""Wizard page 1: which AWS account (a profile or typed keys), region, stack, and what to do.

"Check" asks STS who the credentials are and whether the stack exists, off the UI thread;
Next is enabled only after a check of the values as they are now.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWizardPage,
)

from desktop.core.deploy_options import STACK_NAME
from desktop.services.aws_profiles import available_profiles
from desktop.services.deploy import flow
from desktop.services.deploy.errors import translate
from desktop.services.deploy.stack import StackDeployer
from desktop.views import theme
from desktop.views.wizard.context import WizardContext, in_words, make_session

REGIONS = ("us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1", "eu-north-1", "ap-northeast-1",
           "ap-southeast-2")


class AccountPage(QWizardPage):
    """Credentials, region, stack name, deploy-or-delete; checked before Next."""

    def __init__(self, ctx: WizardContext, profiles: list[str] | None = None) -> None:
        super().__init__()
        self.ctx = ctx
        self.setTitle("AWS account")
        self.setSubTitle("Choose the account TinyLlama is deployed into. Nothing is created until the review.")
        self._checked_key: tuple[str, ...] | None = None
        self._checking = False

        self.use_profile = QRadioButton("AWS profile (from ~/.aws)")
        self.use_keys = QRadioButton("Access keys")
        group = QButtonGroup(self)
        group.addButton(self.use_profile)
        group.addButton(self.use_keys)
        self.profile = QComboBox()
        self.profile.addItems(profiles if profiles is not None else available_profiles())
        self.access_key = QLineEdit(placeholderText="AKIA…")
        self.secret_key = QLineEdit(placeholderText="secret access key")
        self.secret_key.setEchoMode(QLineEdit.EchoMode.Password)
        self.session_token = QLineEdit(placeholderText="session token (temporary credentials only)")
        self.session_token.setEchoMode(QLineEdit.EchoMode.Password)
        self.region = QComboBox()
        self.region.setEditable(True)
        self.region.addItems(REGIONS)
        self.stack_name = QLineEdit(ctx.settings.get("aws.stack_name") or "tinyllama")
        self.deploy = QRadioButton("Deploy or update the stack")
        self.delete = QRadioButton("Delete the stack")
        actions = QButtonGroup(self)
        actions.addButton(self.deploy)
        actions.addButton(self.delete)
        self.deploy.setChecked(True)
        self.check_button = QPushButton("Check")
        self.preview_button = QPushButton("Options and costs first →")
        self.preview_button.setObjectName("preview")
        self.preview_button.setToolTip("See every option and what the stack costs idle, without credentials.")
        self.result = QLabel("")
        self.result.setObjectName("identity")
        self.result.setWordWrap(True)

        if self.profile.count():
            self.use_profile.setChecked(True)
            saved = str(ctx.settings.get("aws.aws_profile") or "")
            if saved:
                self.profile.setCurrentText(saved)
        else:
            self.use_keys.setChecked(True)
            self.use_profile.setEnabled(False)
            self.profile.setPlaceholderText("no profiles in ~/.aws")
        self.region.setCurrentText(str(ctx.settings.get("aws.region") or "us-east-1"))

        form = QFormLayout()
        form.addRow(self.use_profile, self.profile)
        form.addRow(self.use_keys, self.access_key)
        form.addRow("", self.secret_key)
        form.addRow("", self.session_token)
        form.addRow("Region", self.region)
        form.addRow("Stack name", self.stack_name)
        act = QHBoxLayout()
        act.addWidget(self.deploy)
        act.addWidget(self.delete)
        act.addStretch(1)
        form.addRow("Action", act)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        row = QHBoxLayout()
        row.addWidget(self.check_button)
        row.addWidget(self.result, 1)
        layout.addLayout(row)
        preview = QHBoxLayout()
        preview.addWidget(QLabel("No credentials at hand?"))
        preview.addWidget(self.preview_button)
        preview.addStretch(1)
        layout.addLayout(preview)
        layout.addStretch(1)
        note = QLabel("Typed keys are used for this session only and never saved. The identity needs rights "
                      "to CloudFormation, S3, IAM, EC2 and the services the stack creates.")
        note.setWordWrap(True)
        theme.styled(note, "color: $muted;")
        layout.addWidget(note)

        self.check_button.clicked.connect(self.check)
        self.preview_button.clicked.connect(self.preview)
        for w in (self.access_key, self.secret_key, self.session_token, self.stack_name):
            w.textChanged.connect(self._changed)
        self.profile.currentTextChanged.connect(self._changed)
        self.region.currentTextChanged.connect(self._changed)
        self.use_profile.toggled.connect(self._changed)
        self.delete.toggled.connect(self._changed)
        self._changed()

    def preview(self) -> None:
        """Go on to Options without a check: it shows the options and the idle cost, and
        waits for a checked account before deploying."""
        wizard = self.wizard()
        if wizard is not None:
            wizard.next()

    def _key(self) -> tuple[str, ...]:
        return (str(self.use_profile.isChecked()), self.profile.currentText(), self.access_key.text(),
                self.secret_key.text(), self.session_token.text(), self.region.currentText().strip(),
                self.stack_name.text().strip())

    def _changed(self) -> None:
        keys = self.use_keys.isChecked()
        for w in (self.access_key, self.secret_key, self.session_token):
            w.setEnabled(keys)
        self.profile.setEnabled(not keys and self.profile.count() > 0)
        self.ctx.action = "delete" if self.delete.isChecked() else "deploy"
        self.preview_button.setEnabled(not self.delete.isChecked())
        if self._checked_key is not None and self._checked_key != self._key():
            self._checked_key = None
            self.result.setText("Changed: check again.")
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        return self._checked_key == self._key() and not self._checking

    def problems(self) -> list[str]:
        found = []
        if self.use_keys.isChecked() and not (self.access_key.text().strip() and self.secret_key.text().strip()):
            found.append("type both the access key id and the secret")
        if self.use_profile.isChecked() and not self.profile.currentText():
            found.append("choose a profile")
        if not self.region.currentText().strip():
            found.append("choose a region")
        if not STACK_NAME.match(self.stack_name.text().strip()):
            found.append("the stack name starts with a letter and has only letters, digits and hyphens")
        return found

    def check(self) -> None:
        """Ask STS and CloudFormation in the background; Next follows the answer."""
        problems = self.problems()
        if problems:
            self._show_error("To check: " + "; ".join(problems) + ".")
            return
        key = self._key()
        region = key[5]
        profile = self.profile.currentText() if self.use_profile.isChecked() else ""
        access, secret, token = (self.access_key.text().strip(), self.secret_key.text().strip(),
                                 self.session_token.text().strip()) if self.use_keys.isChecked() else ("", "", "")
        stack = key[6]
        factory = self.ctx.deployer_factory

        def work() -> tuple[Any, StackDeployer, flow.Found]:
            try:
                session = make_session(profile, access, secret, token, region)
            except BotoCoreError as exc:  # ProfileNotFound and friends
                raise translate(exc, "reading the profile") from exc
            deployer = factory(session, region)
            return session, deployer, flow.check(deployer, stack)

        self._checking = True
        self.check_button.setEnabled(False)
        theme.styled(self.result, "")
        self.result.setText("Checking…")
        self.completeChanged.emit()
        self.ctx.runner.run(work, lambda r: self._checked(key, profile, r), self._failed)

    def _checked(self, key: tuple[str, ...], profile: str,
                 result: tuple[Any, StackDeployer, flow.Found]) -> None:
        self._checking = False
        self.check_button.setEnabled(True)
        if key != self._key():  # changed while checking: that answer is for other values
            self.completeChanged.emit()
            return
        session, deployer, found = result
        who, status = found.identity, found.status
        ctx = self.ctx
        ctx.session, ctx.deployer, ctx.identity, ctx.existing_status = session, deployer, who, status
        ctx.existing_parameters = found.parameters
        ctx.profile, ctx.region, ctx.stack_name = profile, key[5], key[6]
        if profile:  # remembered for the next wizard and the cost panel; a name, never a key
            ctx.settings.set("aws.aws_profile", profile)
            ctx.settings.save()
        if ctx.action == "delete" and not status:
            self._show_error(f"Signed in as {who.arn}, but there is no stack {ctx.stack_name} in {ctx.region} "
                             "to delete.")
            return
        stack = f"Stack {ctx.stack_name}: {status} — Next updates it." if status else \
            f"Stack {ctx.stack_name} does not exist yet — Next creates it."
        if ctx.action == "delete":
            stack = f"Stack {ctx.stack_name}: {status} — Next reviews what deleting removes."
        theme.styled(self.result, "color: $success;")
        self.result.setText(f"✔ {who.arn}\nAccount {who.account}, {who.region}. {stack}")
        self._checked_key = key
        self.completeChanged.emit()

    def _failed(self, exc: BaseException) -> None:
        self._checking = False
        self.check_button.setEnabled(True)
        self._show_error(in_words(exc))
        self.completeChanged.emit()

    def _show_error(self, text: str) -> None:
        self._checked_key = None
        theme.styled(self.result, "color: $error;")
        self.result.setText(text)
        self.completeChanged.emit()
