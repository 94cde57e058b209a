"""Who am I? The instance id and region from the EC2 instance metadata service (IMDSv2).

IMDSv2 only: a session token from `PUT /latest/api/token` (with the TTL header), then the
identity document with that token. The stack's launch template requires IMDSv2, so an
IMDSv1 request (a GET without the token) would be refused with 401 anyway.

Proxies from the environment are ignored: IMDS is link-local, and a proxy would answer
for (or block) it.

Off EC2 (a laptop, the local profile, CI) nothing answers at 169.254.169.254: the call
returns None after at most about `timeout` seconds per request.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import requests

log = logging.getLogger(__name__)

TOKEN_PATH = "/latest/api/token"
IDENTITY_PATH = "/latest/dynamic/instance-identity/document"
TOKEN_TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
TOKEN_TTL_S = 300  # the token is used once, right away


@dataclass(frozen=True)
class InstanceIdentity:
    instance_id: str
    region: str
    instance_type: str | None = None
    availability_zone: str | None = None
    account_id: str | None = None


def instance_identity(timeout: float = 1.0, base_url: str | None = None) -> InstanceIdentity | None:
    """This EC2 instance's identity, or None when not on EC2 (or IMDS does not answer).

    `base_url` defaults to botocore's standard `AWS_EC2_METADATA_SERVICE_ENDPOINT`, else
    the link-local address.
    """
    base = (base_url or os.environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT") or "http://169.254.169.254").rstrip("/")
    session = requests.Session()
    session.trust_env = False  # never send IMDS requests through an HTTP(S)_PROXY
    try:
        token_reply = session.put(base + TOKEN_PATH, headers={TOKEN_TTL_HEADER: str(TOKEN_TTL_S)}, timeout=timeout)
        if token_reply.status_code != 200 or not token_reply.text:
            log.debug("IMDS token request answered %s", token_reply.status_code)
            return None
        doc_reply = session.get(base + IDENTITY_PATH, headers={TOKEN_HEADER: token_reply.text}, timeout=timeout)
        if doc_reply.status_code != 200:
            log.debug("IMDS identity document answered %s", doc_reply.status_code)
            return None
        doc = doc_reply.json()
    except (requests.RequestException, ValueError) as exc:
        log.debug("not on EC2 (IMDS unreachable or garbled): %s", exc)
        return None
    finally:
        session.close()
    if not isinstance(doc, dict) or not doc.get("instanceId") or not doc.get("region"):
        log.debug("IMDS identity document lacks instanceId/region: %r", doc)
        return None
    return InstanceIdentity(
        instance_id=doc["instanceId"],
        region=doc["region"],
        instance_type=doc.get("instanceType"),
        availability_zone=doc.get("availabilityZone"),
        account_id=doc.get("accountId"),
    )
