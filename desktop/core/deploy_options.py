"""The deploy wizard's options as plain data: validation, EUR→USD, stack parameters, cost.

Qt-free so the options page stays a thin form and the rules are tested without a window.
The budget is asked for in euros (DESIGN.md: warning 15 EUR, hard cap 20 EUR) and the
templates take whole US dollars, converted with a rate the person can edit; the cap is
rounded down and the warning too, so neither ends above what was asked for.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from backend.core import pricing

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9._-]+$")
REPO = re.compile(r"^https://[A-Za-z0-9.-]+/[A-Za-z0-9._/-]+$")
# infra/mvp.yaml's SourceConnectionArn: a CodeConnections (or older CodeStar) connection.
CONNECTION = re.compile(r"^arn:aws[a-z-]*:(codestar-connections|codeconnections):[a-z0-9-]+:\d{12}:connection/"
                        r"[0-9a-f-]{36}$")
STACK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")
INSTANCE_TYPES = ("g4dn.xlarge", "g4dn.2xlarge", "g5.xlarge", "g5.2xlarge", "g6.xlarge")
# The wizard's Redis choices, in the template's RedisMode values (cheapest first).
REDIS_MODES = {"instance": "Redis on a t4g.nano instance (cheapest)",
               "elasticache-node": "ElastiCache node (cache.t4g.micro, the seed's)",
               "serverless-valkey": "ElastiCache Serverless Valkey"}
EGRESS_MODES = {"ipv6": "IPv6 out, no NAT (cheapest)", "nat-gateway": "NAT gateway (private IPv4 only)"}
DEFAULT_EUR_USD = 1.08
# The template's own default for ImageParameter (infra/stack.yaml): the public Deep Learning
# AMI, whose first boot installs vLLM, the worker and the weights.
STOCK_IMAGE_PARAMETER = "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id"


@dataclass
class DeployOptions:
    """Everything the Options page asks; `parameters()` gives the template's names."""

    template: str = "stack"  # "stack" or "mvp"
    instance_type: str = "g4dn.xlarge"
    root_volume_gib: int = int(pricing.CHEAP_PARAMETERS["RootVolumeGiB"])
    redis_mode: str = pricing.CHEAP_PARAMETERS["RedisMode"]
    egress_mode: str = pricing.CHEAP_PARAMETERS["EgressMode"]
    dashboard: bool = False
    warning_eur: float = 15.0
    hard_cap_eur: float = 20.0
    eur_usd: float = DEFAULT_EUR_USD
    alert_email: str = ""
    model: str = "TinyLlama/TinyLlama-1.1B-Chat-v1.0"
    # MVP: CodeBuild needs a CodeConnections connection to read GitHub; without one the
    # stack has no build project (infra/mvp.yaml), and the repository is not asked for.
    source_connection_arn: str = ""
    source_repository_url: str = ""
    # MVP: `POST /` is public, so keeping each body in S3 is opt-in (infra/NOTES.md prices it).
    store_prompts: bool = False
    # An SSM parameter name holding the worker AMI id (the stack's ImageParameter), always
    # passed, so an update can also go back from a baked image to the stock one.
    image_parameter: str = STOCK_IMAGE_PARAMETER
    # An update keeps the stack's dollar amounts until the person edits the budget: going
    # back from dollars to euros and forth again would not always give the same dollars.
    kept_warning_usd: int | None = None
    kept_hard_cap_usd: int | None = None

    @property
    def warning_usd(self) -> int:
        if self.kept_warning_usd is not None:
            return self.kept_warning_usd
        return max(1, math.floor(self.warning_eur * self.eur_usd))

    @property
    def hard_cap_usd(self) -> int:
        if self.kept_hard_cap_usd is not None:
            return self.kept_hard_cap_usd
        return max(1, math.floor(self.hard_cap_eur * self.eur_usd))

    def problems(self) -> list[str]:
        """What must change before deploying, in words (empty when ready)."""
        found = []
        if not EMAIL.match(self.alert_email):
            found.append("Alert e-mail: an address budget alerts can reach")
        if self.eur_usd <= 0:
            found.append("EUR→USD rate must be above zero")
        if self.hard_cap_eur <= 0 or self.warning_eur <= 0:
            found.append("Budget amounts must be above zero")
        elif self.warning_eur >= self.hard_cap_eur:
            found.append("The warning must be below the hard cap")
        if self.template == "stack":
            if not MODEL.match(self.model):
                found.append("Model: a Hugging Face id such as TinyLlama/TinyLlama-1.1B-Chat-v1.0")
            if not 30 <= self.root_volume_gib <= 1000:
                found.append("Volume: 30 to 1000 GiB")
        elif self.source_connection_arn:
            if not CONNECTION.match(self.source_connection_arn):
                found.append("Connection: the ARN of a CodeConnections connection (Developer Tools → Connections)")
            if not REPO.match(self.source_repository_url):
                found.append("Source repository: an https:// URL the connection can read")
        return found

    def parameters(self) -> dict[str, str]:
        """The stack parameters these options set (the code location is added at upload)."""
        if self.template == "mvp":
            return {"BudgetLimitUsd": str(self.hard_cap_usd), "AlertEmail": self.alert_email,
                    "SourceConnectionArn": self.source_connection_arn,
                    "SourceRepositoryUrl": self.source_repository_url if self.source_connection_arn else "",
                    "StorePrompts": "true" if self.store_prompts else "false"}
        return {
            "InstanceType": self.instance_type,
            "RootVolumeGiB": str(self.root_volume_gib),
            "RedisMode": self.redis_mode,
            "EgressMode": self.egress_mode,
            "CreateDashboard": "true" if self.dashboard else "false",
            "EnableBudgetAction": "true",
            "WarningUsd": str(self.warning_usd),
            "HardCapUsd": str(self.hard_cap_usd),
            "AlertEmail": self.alert_email,
            "Model": self.model,
            "ImageParameter": self.image_parameter,
        }

    def estimate(self) -> pricing.Estimate:
        """The idle month and GPU hour of these options (pricing's own figures). A baked
        image means the image pipeline, whose kept images' snapshots are priced too."""
        if self.template == "mvp":
            return pricing.estimate(template="mvp")
        kept = 0 if self.image_parameter == STOCK_IMAGE_PARAMETER else pricing.PIPELINE_KEEP_IMAGES
        return pricing.estimate({k: v for k, v in self.parameters().items() if k in pricing.DEFAULT_PARAMETERS},
                                kept_images=kept)
