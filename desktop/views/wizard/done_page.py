"""Wizard page 6: the stack's outputs become the app's AWS profile; the first user.

The temporary password is shown once, here, and kept nowhere else. "Sign in now" makes
the app switch to the AWS profile and open the sign-in dialog when the wizard closes.
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWizardPage,
)

from desktop.core.deploy_options import EMAIL
from desktop.core.settings import Settings
from desktop.services.deploy.users import create_first_user
from desktop.views import theme
from desktop.views.wizard.context import WizardContext, in_words

USERNAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@+")


def save_profile(settings: Settings, ctx: WizardContext) -> None:
    """Write the stack's outputs (and what the cost panel needs) into the AWS profile."""
    out = ctx.outputs
    values = {"api_url": out.get("ApiUrl", ""), "region": out.get("Region", ctx.region),
              "user_pool_id": out.get("UserPoolId", ""), "client_id": out.get("UserPoolClientId", ""),
              "aws_profile": ctx.profile, "stack_name": ctx.stack_name, "instance_id": out.get("InstanceId", ""),
              "data_bucket": out.get("DataBucket", ""), "budget_name": out.get("BudgetName", "")}
    for key, value in values.items():
        settings.set(f"aws.{key}", value)
    if ctx.options.template == "stack":
        settings.set("aws.warning_usd", float(ctx.options.warning_usd))
    settings.set("aws.hard_cap_usd", float(ctx.options.hard_cap_usd))
    settings.save()


class DonePage(QWizardPage):
    """Outputs, the profile written, the first user, and sign in."""

    def __init__(self, ctx: WizardContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.setTitle("Done")
        self.setSubTitle("What the stack made, and who may use it.")
        self.setFinalPage(True)
        self.summary = QLabel()
        self.summary.setObjectName("done_summary")
        self.summary.setWordWrap(True)
        self.outputs = QLabel()
        self.outputs.setObjectName("outputs")
        self.outputs.setWordWrap(True)
        self.outputs.setStyleSheet("font-family: monospace;")

        self.user_box = QGroupBox("First user")
        self.username = QLineEdit(placeholderText="ada")
        self.email = QLineEdit(placeholderText="ada@example.com")
        self.temp = QRadioButton("Temporary password, shown here once")
        self.invite = QRadioButton("E-mail an invitation")
        group = QButtonGroup(self)
        group.addButton(self.temp)
        group.addButton(self.invite)
        self.temp.setChecked(True)
        self.create_button = QPushButton("Create user")
        self.password = QLineEdit()
        self.password.setObjectName("temporary_password")
        self.password.setReadOnly(True)
        self.password.setStyleSheet("font-family: monospace; font-size: 14px;")  # tells l, 1 and I apart
        self.password.setVisible(False)
        self.user_result = QLabel()
        self.user_result.setObjectName("user_result")
        self.user_result.setWordWrap(True)
        form = QFormLayout(self.user_box)
        form.addRow("User name", self.username)
        form.addRow("E-mail", self.email)
        how = QHBoxLayout()
        how.addWidget(self.temp)
        how.addWidget(self.invite)
        form.addRow("", how)
        form.addRow("", self.create_button)
        form.addRow("", self.password)
        form.addRow("", self.user_result)
        self.sign_in = QCheckBox("Switch to this stack and sign in now")
        self.sign_in.setObjectName("sign_in_now")

        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.outputs)
        layout.addWidget(self.user_box)
        layout.addStretch(1)
        layout.addWidget(self.sign_in)
        self.create_button.clicked.connect(self.create_user)
        self.username.textChanged.connect(self._user_fields)
        self.email.textChanged.connect(self._user_fields)
        self._user_fields()

    def initializePage(self) -> None:
        ctx = self.ctx
        final = ctx.final
        deleted = final is not None and final.status == "DELETE_COMPLETE"
        has_pool = bool(ctx.outputs.get("UserPoolId"))
        self.user_box.setVisible(has_pool and not deleted)
        self.sign_in.setVisible(has_pool and not deleted)
        self.sign_in.setChecked(has_pool and not deleted)
        if deleted:
            self.summary.setText(f"<b>{ctx.stack_name} is deleted.</b> The bootstrap bucket is kept for the next "
                                 "deployment; delete it in the S3 console if you no longer need it.")
            self.outputs.setText("")
            return
        save_profile(ctx.settings, ctx)
        self.summary.setText(f"<b>{ctx.stack_name} is ready.</b> Its outputs are saved as the app's AWS profile "
                             "(Account → Profile…).")
        self.outputs.setText("<br>".join(f"{k}: {v}" for k, v in sorted(ctx.outputs.items())))

    def _user_fields(self) -> None:
        name = self.username.text().strip()
        ok = bool(name) and set(name) <= USERNAME_CHARS and bool(EMAIL.match(self.email.text().strip()))
        self.create_button.setEnabled(ok)

    def create_user(self) -> None:
        """Cognito admin-create-user in the background."""
        ctx = self.ctx
        pool = ctx.outputs.get("UserPoolId", "")
        name, email, invite = self.username.text().strip(), self.email.text().strip(), self.invite.isChecked()
        session, region, factory = ctx.session, ctx.region, ctx.cognito_factory
        self.create_button.setEnabled(False)
        theme.styled(self.user_result, "")
        self.user_result.setText("Creating…")

        def work() -> str:
            return create_first_user(factory(session, region), pool, name, email, invite_by_email=invite)

        ctx.runner.run(work, lambda pw: self._created(name, email, pw), self._create_failed)

    def _created(self, name: str, email: str, password: str) -> None:
        theme.styled(self.user_result, "color: $success;")
        if password:
            self.password.setText(password)
            self.password.setVisible(True)
            self.user_result.setText(f"✔ {name} created. Write the temporary password down: it is shown only "
                                     "now. Signing in asks for a new one.")
        else:
            self.user_result.setText(f"✔ {name} created. Cognito e-mails {email} a temporary password.")
        self.ctx.settings.set("aws.username", name)
        self.ctx.settings.save()

    def _create_failed(self, exc: BaseException) -> None:
        theme.styled(self.user_result, "color: $error;")
        self.user_result.setText(in_words(exc))
        self._user_fields()
