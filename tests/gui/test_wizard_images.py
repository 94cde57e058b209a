"""The wizard's Options page before credentials (the idle cost needs no AWS) and, once the
account is checked, the worker images the pipeline baked there (moto's EC2 and SSM), with
the chosen one passed as the stack's ImageParameter."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from PySide6.QtGui import QStandardItemModel

from desktop.core.deploy_options import STOCK_IMAGE_PARAMETER
from desktop.core.settings import Settings
from desktop.qt.runner import Runner
from desktop.services.deploy.stack import StackDeployer
from desktop.services.images import (
    BAKED_IMAGE_PARAMETER,
    PIPELINE_TAG,
    WorkerImage,
    image_choices,
    list_baked_images,
    root_volume_gib,
)
from desktop.views.wizard import DeployWizard, WizardContext
from desktop.views.wizard.options_page import SIGN_IN_FOR_IMAGES
from desktop.views.wizard.wizard import ACCOUNT, OPTIONS
from tests.fixtures.aws import FAKE_CREDENTIALS, REGION
from tests.gui.conftest import save_screenshot


@pytest.fixture
def endpoint(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_env)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)  # credentials only from the wizard's fields
    return aws_env


def client(name: str) -> Any:
    return boto3.client(name, region_name=REGION, aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])


@pytest.fixture
def baked(endpoint: str) -> tuple[str, str, str]:
    """Two images as the pipeline's distribution leaves them: tagged, the newer one in SSM."""
    ec2 = client("ec2")
    base = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instance = ec2.run_instances(ImageId=base, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    pipeline = f"tl-pipe-{uuid.uuid4().hex[:6]}"
    ids = []
    for day in ("2033-01-05", "2033-02-07"):
        image = ec2.create_image(InstanceId=instance, Name=f"tinyllama-worker-{day}-{pipeline}")["ImageId"]
        ec2.create_tags(Resources=[image], Tags=[{"Key": PIPELINE_TAG, "Value": pipeline}])
        ids.append(image)
    ec2.create_image(InstanceId=instance, Name=f"someone-else-{pipeline}")  # untagged: not ours
    client("ssm").put_parameter(Name=BAKED_IMAGE_PARAMETER, Value=ids[1], Type="String", DataType="aws:ec2:image",
                                Overwrite=True)
    return ids[0], ids[1], pipeline  # moto's server lives for the session: other tests' images stay


@pytest.fixture
def wizard(qtbot: Any, paths: Any, endpoint: str) -> Iterator[DeployWizard]:
    runner = Runner()
    ctx = WizardContext(Settings(paths.settings_file), runner, poll_interval_ms=0,
                        deployer_factory=lambda session, region: StackDeployer(session=session, region=region))
    w = DeployWizard(ctx, profiles=[])
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    yield w
    assert runner.shutdown(20000)


def test_options_and_idle_cost_before_any_credentials(qtbot: Any, wizard: DeployWizard) -> None:
    assert wizard.currentId() == ACCOUNT and not wizard.account_page.isComplete()
    wizard.account_page.preview_button.click()
    options = wizard.options_page
    assert wizard.currentId() == OPTIONS
    assert options.cost_table.rowCount() > 3 and options.idle_total.text().startswith("<b>Idle: $")
    assert options.preview_note.isVisible()
    assert options.image_note.text() == SIGN_IN_FOR_IMAGES
    assert [options.image.itemData(i) for i in range(options.image.count())] == [STOCK_IMAGE_PARAMETER]
    options.email.setText("ada@example.com")
    assert not options.problems.text()  # the options are fine ...
    assert not options.isComplete()  # ... but deploying waits for a checked account
    save_screenshot(wizard, "wizard_options_preview.png")


def test_baked_images_listed_after_the_check_and_passed_as_image_parameter(
        qtbot: Any, wizard: DeployWizard, baked: tuple[str, str, str]) -> None:
    older, newer, _ = baked
    wizard.account_page.preview_button.click()  # first a look without credentials
    assert wizard.options_page.image.count() == 1
    wizard.back()
    page = wizard.account_page
    page.access_key.setText("testing")
    page.secret_key.setText("testing")
    page.region.setCurrentText(REGION)
    page.check_button.click()
    qtbot.waitUntil(page.isComplete, timeout=10000)
    wizard.next()
    options = wizard.options_page
    assert wizard.currentId() == OPTIONS and not options.preview_note.isVisible()
    qtbot.waitUntil(lambda: newer in options.image.itemText(0), timeout=10000)  # newest first
    labels = [options.image.itemText(i) for i in range(options.image.count())]
    data = [options.image.itemData(i) for i in range(options.image.count())]
    assert data[-1] == STOCK_IMAGE_PARAMETER and "first wake ~10–15 min" in labels[-1]
    baked_rows = {newer: labels.index(next(t for t in labels if newer in t)),
                  older: labels.index(next(t for t in labels if older in t))}
    assert data[baked_rows[newer]] == BAKED_IMAGE_PARAMETER and "first wake ~2–4 min" in labels[baked_rows[newer]]
    model = options.image.model()
    assert isinstance(model, QStandardItemModel)
    assert not model.item(baked_rows[older]).isEnabled()  # no SSM parameter names it: not offered
    assert options.image.currentData() == BAKED_IMAGE_PARAMETER  # the usable baked one is preselected
    options.email.setText("ada@example.com")
    assert options.isComplete()
    assert wizard.ctx.options.parameters()["ImageParameter"] == BAKED_IMAGE_PARAMETER
    save_screenshot(wizard, "wizard_options_images.png")
    options.image.setCurrentIndex(len(labels) - 1)
    assert wizard.ctx.options.parameters()["ImageParameter"] == STOCK_IMAGE_PARAMETER


def test_list_baked_images_only_ours_and_which_ssm_names(baked: tuple[str, str, str]) -> None:
    older, newer, pipeline = baked
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing")
    listed = list_baked_images(session, REGION)
    images = [i for i in listed if i.pipeline == pipeline]
    assert all(i.pipeline.startswith("tl-pipe-") for i in listed)  # the untagged image is never listed
    assert {i.image_id: i.parameter for i in images} == {older: None, newer: BAKED_IMAGE_PARAMETER}


def test_no_pipeline_parameter_offers_only_stock(baked: tuple[str, str, str]) -> None:
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing")
    client("ssm").delete_parameters(Names=[BAKED_IMAGE_PARAMETER])
    choices = image_choices(list_baked_images(session, REGION))
    assert [c.parameter for c in choices if c.parameter] == [STOCK_IMAGE_PARAMETER]


def test_the_mvp_asks_for_a_repository_only_with_a_build_connection(qtbot: Any, wizard: DeployWizard) -> None:
    # Without a CodeConnections connection the MVP has no build project (infra/mvp.yaml), so
    # nothing about a repository is asked; storing prompts is an explicit choice.
    wizard.account_page.preview_button.click()
    options = wizard.options_page
    options.template.setCurrentIndex(options.template.findData("mvp"))
    options.email.setText("ada@example.com")
    assert options.connection.isVisible() and options.store_prompts.isVisible()
    assert not options.repo.isVisible() and not options.problems.text()
    assert options.options().parameters()["StorePrompts"] == "false"
    options.connection.setText("arn:aws:codeconnections:us-east-1:123456789012:connection/"
                               "0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d")
    assert options.repo.isVisible() and "Source repository" in options.problems.text()
    options.repo.setText("https://github.com/ada/tinyllama")
    options.store_prompts.setChecked(True)
    assert not options.problems.text()
    parameters = options.options().parameters()
    assert parameters["SourceRepositoryUrl"] == "https://github.com/ada/tinyllama"
    assert parameters["StorePrompts"] == "true"
    save_screenshot(wizard, "wizard_options_mvp.png")


def test_the_volume_is_never_smaller_than_the_chosen_images_snapshot(qtbot: Any, wizard: DeployWizard) -> None:
    # EC2 refuses a root volume smaller than the image's snapshot only when the stack creates
    # the instance, minutes in; moto reports every image as 15 GiB, so the sizes are given
    # here as describe_images gives them (root_volume_gib reads them from such an answer).
    options = wizard.options_page
    key = ("us-east-1", 1)
    options._images_for = key
    baked = WorkerImage("ami-0b", "tinyllama-worker-2033-02-07", "2033-02-07T00:00:00Z", "tl-pipe",
                        BAKED_IMAGE_PARAMETER, volume_gib=40)
    options._images_listed(key, [baked], 75)
    assert options.image.currentData() == BAKED_IMAGE_PARAMETER
    assert (options.volume.minimum(), options.volume.value()) == (40, 40)
    cheap_total = options.idle_total.text()
    options.image.setCurrentIndex(options.image.findData(STOCK_IMAGE_PARAMETER))
    assert (options.volume.minimum(), options.volume.value()) == (75, 75)
    assert options.options().parameters()["RootVolumeGiB"] == "75"
    assert options.idle_total.text() != cheap_total  # the bigger volume is priced
    assert "75 GiB" in options.volume.toolTip()


def test_root_volume_gib_reads_the_root_device_of_a_real_shaped_answer() -> None:
    image = {"RootDeviceName": "/dev/sda1", "BlockDeviceMappings": [
        {"DeviceName": "/dev/sdb", "VirtualName": "ephemeral0"},
        {"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": "snap-0", "VolumeSize": 75, "VolumeType": "gp3"}}]}
    assert root_volume_gib(image) == 75
    assert root_volume_gib({"RootDeviceName": "/dev/xvda", "BlockDeviceMappings": []}) is None
