"""The Options page's cost table shows the very lines `tinyllama cost-estimate` prints,
before anything exists: each profile's idle month line by line, then the GPU hour."""

from __future__ import annotations

from pathlib import Path

from pytestqt.qtbot import QtBot

from backend.core import pricing
from desktop.core.settings import Settings
from desktop.qt.runner import Runner
from desktop.views.wizard import WizardContext
from desktop.views.wizard.options_page import OptionsPage


def rows(page: OptionsPage) -> list[tuple[str, str]]:
    table = page.cost_table
    return [(table.item(r, 0).text(), table.item(r, 1).text()) for r in range(table.rowCount())]


def test_cost_table_is_the_profiles_estimate(qtbot: QtBot, tmp_path: Path) -> None:
    runner = Runner()
    page = OptionsPage(WizardContext(Settings(tmp_path / "settings.json"), runner), signed_in=lambda: False)
    qtbot.addWidget(page)
    # The page opens on the cheap profile's parameters with the stock image: no kept image
    # snapshot is priced until a baked image is chosen (tests/gui/test_wizard_images.py).
    cheap = pricing.estimate(pricing.CHEAP_PARAMETERS)
    assert rows(page) == [(x.item, f"{x.usd:.2f}") for x in cheap.idle_lines] + [
        (x.item, f"{x.usd:.4f}/h") for x in cheap.gpu_hour_lines]
    assert "Idle: $6.51 / month" in page.idle_total.text()
    page.redis.setCurrentIndex(page.redis.findData("elasticache-node"))
    page.dashboard.setChecked(True)
    seed = pricing.estimate(pricing.SEED_PARAMETERS)
    assert rows(page)[: len(seed.idle_lines)] == [(x.item, f"{x.usd:.2f}") for x in seed.idle_lines]
    assert "Idle: $14.48 / month" in page.idle_total.text()
    page.egress.setCurrentIndex(page.egress.findData("nat-gateway"))
    assert ("Egress: NAT gateway (one AZ)", "32.85") in rows(page)
    assert "GPU public IPv4 address" not in [item for item, amount in rows(page) if amount.endswith("/h")]
    assert runner.shutdown(5000)  # nothing ran in the background: no AWS before an account is checked
