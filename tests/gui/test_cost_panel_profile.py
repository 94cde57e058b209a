"""The cost panel's AWS profile picker: profiles from the AWS config files (pointed at
temporary files), a switch rebuilds the panel's service for the new profile without a
restart, and the name, never a key, is saved in settings. Cost Explorer is moto's."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from desktop.core.settings import Settings
from desktop.qt.runner import Runner
from desktop.views.cost_panel import DEFAULT_CREDENTIALS, open_cost_panel
from tests.conftest import FrozenClock
from tests.fixtures.aws import inject_cost_and_usage
from tests.gui.conftest import save_screenshot
from tests.gui.test_cost_panel import month_of_results


@pytest.fixture
def aws_files(aws_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Two profiles: `alpha` has keys (moto takes any), `nokeys` has none anywhere."""
    config, credentials = tmp_path / "aws-config", tmp_path / "aws-credentials"
    config.write_text("[profile alpha]\nregion = us-east-1\n[profile nokeys]\nregion = us-east-1\n")
    credentials.write_text("[alpha]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)  # credentials only through a profile
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance role to fall back on
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_env)
    return aws_env



@pytest.mark.parametrize("frozen_clock", [datetime(2033, 3, 12, 9, 0, tzinfo=UTC)], indirect=True)
def test_pick_a_profile_and_the_panel_follows(qtbot: Any, aws_files: str, runner: Runner, tmp_path: Path,
                                             frozen_clock: FrozenClock) -> None:
    inject_cost_and_usage(aws_files, month_of_results(2033, 3, 12))
    settings_file = tmp_path / "config" / "settings.json"
    settings = Settings(settings_file)
    settings.set("aws.aws_profile", "alpha")
    panel = open_cost_panel(settings, runner, clock=frozen_clock)
    qtbot.addWidget(panel)
    panel.show()
    qtbot.waitUntil(lambda: panel.snapshot is not None and not panel._busy, timeout=10000)
    picker = panel.profile
    assert [picker.itemText(i) for i in range(picker.count())] == [DEFAULT_CREDENTIALS, "alpha", "nokeys"]
    assert picker.currentText() == "alpha"
    assert panel.total.text().startswith("Month to date: $") and not panel.errors.text()
    save_screenshot(panel, "cost_panel_profile.png")

    picker.setCurrentIndex(picker.findData("nokeys"))  # no restart: the panel reloads for it
    qtbot.waitUntil(lambda: panel.snapshot is not None and not panel._busy, timeout=10000)
    assert "No AWS credentials for Cost Explorer" in panel.errors.text()
    assert panel.total.text() == "Month to date: not fetched yet"  # alpha's figures are not shown as nokeys'
    assert panel.service.cache_file.name != "cost-alpha.json" and "nokeys" in panel.service.cache_file.name
    saved = Settings(settings_file)
    assert saved.get("aws.aws_profile") == "nokeys"
    assert "testing" not in settings_file.read_text()  # a name, never a key

    picker.setCurrentIndex(picker.findData("alpha"))  # back: alpha's cached month, no new request needed
    qtbot.waitUntil(lambda: panel.snapshot is not None and not panel._busy, timeout=10000)
    assert panel.total.text().startswith("Month to date: $") and not panel.errors.text()
    assert Settings(settings_file).get("aws.aws_profile") == "alpha"


def test_the_wizards_profile_is_remembered_for_the_panel(qtbot: Any, aws_files: str, runner: Runner,
                                                        tmp_path: Path) -> None:
    from desktop.services.deploy.stack import StackDeployer
    from desktop.views.wizard import DeployWizard, WizardContext

    settings_file = tmp_path / "config" / "settings.json"
    ctx = WizardContext(Settings(settings_file), runner,
                        deployer_factory=lambda session, region: StackDeployer(session=session, region=region))
    wizard = DeployWizard(ctx)  # the profiles come from the AWS config files
    qtbot.addWidget(wizard)
    page = wizard.account_page
    assert [page.profile.itemText(i) for i in range(page.profile.count())] == ["alpha", "nokeys"]
    page.profile.setCurrentText("alpha")
    page.check_button.click()
    qtbot.waitUntil(page.isComplete, timeout=10000)
    assert Settings(settings_file).get("aws.aws_profile") == "alpha"  # the cost panel opens on it
