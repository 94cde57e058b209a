"""Which worker image a stack boots: the ones the pipeline baked here, or the stock AMI.

The stack's `ImageParameter` is an SSM parameter *name* (its type is
`AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>`), not an AMI id. infra/pipeline.yaml's
Image Builder distribution tags every image it bakes `tinyllama:stack=<pipeline stack>`
and writes the newest one's id to `/tinyllama/worker-ami`; so the newest baked image is
chosen by passing that parameter's name, and an older baked image cannot be chosen
without an SSM parameter of its own (it is listed, but not offered).

The first-wake figures beside each choice, and where they come from:
- stock Deep Learning AMI: ~10–15 min, because the first boot installs vLLM, the worker
  and the weights (infra/NOTES.md; infra/stack.yaml's ImageParameter comment);
- baked image: ~2–4 min. DESIGN.md's checked wake timings give EC2 pending→running
  ~16–20 s and vLLM start-up 20–60 s; the first boot of a new volume also reads every
  block of the venv and the weights from the image's snapshot, which EBS loads from S3 on
  first access ("Initialize Amazon EBS volumes", EBS user guide), so the first wake is
  slower than the later ones (~40–80 s). Not measured on a real account yet.
Qt-free; boto3 clients come from the session the Account page checked.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from desktop.core.deploy_options import STOCK_IMAGE_PARAMETER
from desktop.services.deploy.errors import translate

PIPELINE_TAG = "tinyllama:stack"
BAKED_IMAGE_PARAMETER = "/tinyllama/worker-ami"
STOCK_FIRST_WAKE = "first wake ~10–15 min: installs vLLM and the model"
BAKED_FIRST_WAKE = "first wake ~2–4 min: boot, then vLLM loads the baked model"


@dataclass(frozen=True)
class WorkerImage:
    """One image the pipeline baked in this account and region."""

    image_id: str
    name: str
    created: str  # ISO 8601, as EC2 says
    pipeline: str  # the pipeline stack that baked it (its tag)
    parameter: str | None  # the SSM parameter name that resolves to it, if any
    volume_gib: int | None = None  # its root snapshot: the smallest root volume it boots on


@dataclass(frozen=True)
class ImageChoice:
    """A line of the Options page's image list: what `ImageParameter` becomes, and why."""

    label: str
    parameter: str | None  # None: listed, but the stack cannot take it
    first_wake: str
    note: str = ""
    volume_gib: int | None = None  # the root volume must be at least this (None: not known yet)


STOCK_CHOICE = ImageChoice("Stock Deep Learning AMI", STOCK_IMAGE_PARAMETER, STOCK_FIRST_WAKE,
                           "AWS's public GPU image with the NVIDIA driver; nothing to bake first")


def list_baked_images(session: Any, region: str) -> list[WorkerImage]:
    """The pipeline's images in `region`, newest first (a DeployError in words on failure)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        ec2 = session.client("ec2", region_name=region)
        ssm = session.client("ssm", region_name=region)
        images: list[dict[str, Any]] = []
        for page in ec2.get_paginator("describe_images").paginate(
                Owners=["self"], Filters=[{"Name": "tag-key", "Values": [PIPELINE_TAG]}]):
            images.extend(page.get("Images", []))
        try:
            newest = str(ssm.get_parameter(Name=BAKED_IMAGE_PARAMETER)["Parameter"]["Value"])
        except ssm.exceptions.ParameterNotFound:
            newest = ""  # no pipeline run finished here yet (or its parameter was removed)
    except (BotoCoreError, ClientError) as exc:  # translate() words them for a person
        raise translate(exc, "listing your worker images") from exc
    found = []
    # Newest first; the name (tinyllama-worker-<build date>) breaks a tie within a second.
    for image in sorted(images, key=lambda i: (str(i.get("CreationDate", "")), str(i.get("Name", ""))),
                        reverse=True):
        tags = {t["Key"]: t["Value"] for t in image.get("Tags", [])}
        found.append(WorkerImage(
            image_id=image["ImageId"], name=str(image.get("Name", image["ImageId"])),
            created=str(image.get("CreationDate", "")), pipeline=tags.get(PIPELINE_TAG, ""),
            parameter=BAKED_IMAGE_PARAMETER if image["ImageId"] == newest else None,
            volume_gib=root_volume_gib(image)))
    return found


def root_volume_gib(image: dict[str, Any]) -> int | None:
    """The size of an image's root snapshot (EC2 refuses a smaller root volume at launch:
    "Volume of size N GB is smaller than snapshot")."""
    for mapping in image.get("BlockDeviceMappings", []):
        if mapping.get("DeviceName") == image.get("RootDeviceName") and "VolumeSize" in mapping.get("Ebs", {}):
            return int(mapping["Ebs"]["VolumeSize"])
    return None


def stock_volume_gib(session: Any, region: str) -> int | None:
    """The stock Deep Learning AMI's root snapshot in `region` (None when AWS does not say)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        ssm = session.client("ssm", region_name=region)
        try:
            image_id = str(ssm.get_parameter(Name=STOCK_IMAGE_PARAMETER)["Parameter"]["Value"])
        except ssm.exceptions.ParameterNotFound:
            return None  # a region (or an emulator) without AWS's public parameter
        images = session.client("ec2", region_name=region).describe_images(ImageIds=[image_id])["Images"]
    except (BotoCoreError, ClientError) as exc:
        raise translate(exc, "reading the stock image's size") from exc
    return root_volume_gib(images[0]) if images else None


def image_choices(images: list[WorkerImage], stock_gib: int | None = None) -> list[ImageChoice]:
    """What the Options page offers: baked images newest first, then the stock AMI."""
    choices = []
    for image in images:
        day = image.created[:10]
        if image.parameter:
            # Short, so the first-wake time beside it stays visible; the name is in the tooltip.
            choices.append(ImageChoice(f"Baked {day} ({image.image_id})", image.parameter, BAKED_FIRST_WAKE,
                                       f"{image.name}, from pipeline {image.pipeline}, via {image.parameter}",
                                       image.volume_gib))
        else:
            choices.append(ImageChoice(
                f"Baked {day} ({image.image_id}), older", None, BAKED_FIRST_WAKE,
                f"{image.name}: the stack takes an image through an SSM parameter, "
                f"and {BAKED_IMAGE_PARAMETER} holds a newer one"))
    return [*choices, dataclasses.replace(STOCK_CHOICE, volume_gib=stock_gib)]
