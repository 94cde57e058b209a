"""The bootstrap bucket: created once per account and region, reused after (what `cdk
bootstrap` and `sam deploy --resolve-s3` do); content-keyed uploads into it; and emptying a
stack's data bucket before a delete."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import WaiterError

from desktop.services.deploy.errors import AWS_ERRORS, DeployError, error_code, translate

BOOTSTRAP_PREFIX = "tinyllama-bootstrap"
MISSING = {"404", "NoSuchBucket", "NotFound"}


@dataclass(frozen=True)
class Artifact:
    """A file to upload: where it comes from and the key's prefix; the key gets its hash."""

    name: str
    path: Path
    keep_name: bool = True  # worker wheels must keep their own file name


def bootstrap_bucket_name(account: str, region: str) -> str:
    """The one artifact bucket of an account and region."""
    return f"{BOOTSTRAP_PREFIX}-{account}-{region}"


def ensure_bootstrap_bucket(s3: Any, account: str, region: str, *, delay_s: float = 5.0) -> tuple[str, bool]:
    """Create (or reuse) the artifact bucket; returns (name, created). Settings are
    re-applied on reuse, so a bucket someone loosened is tightened again."""
    name = bootstrap_bucket_name(account, region)
    doing = f"preparing the bootstrap bucket {name}"
    created = False
    try:
        try:
            s3.head_bucket(Bucket=name, ExpectedBucketOwner=account)
        except AWS_ERRORS as exc:
            if error_code(exc) in {"403", "AccessDenied"}:
                raise DeployError(f"The bucket {name} exists but belongs to another account or is not readable "
                                  "by you.", code="BucketForbidden") from exc
            if error_code(exc) not in MISSING:
                raise
            created = _create(s3, name, region)
            # S3's own waiter: the bucket answers before its settings are put on it.
            s3.get_waiter("bucket_exists").wait(Bucket=name, ExpectedBucketOwner=account,
                                                WaiterConfig={"Delay": delay_s, "MaxAttempts": 20})
        s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True})
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}]})
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        if str(s3.meta.endpoint_url).startswith("https://"):
            # Deny plain HTTP, as cdk bootstrap does; skipped only for a local emulator on
            # http://, which this policy would lock the deployer itself out of.
            s3.put_bucket_policy(Bucket=name, Policy=_tls_only_policy(name))
    except (*AWS_ERRORS, WaiterError) as exc:
        raise translate(exc, doing) from exc
    return name, created


def _create(s3: Any, name: str, region: str) -> bool:
    """create_bucket; False when it already was ours (a race with another deploy)."""
    kwargs: dict[str, Any] = {"Bucket": name}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**kwargs)
    except AWS_ERRORS as exc:
        if error_code(exc) != "BucketAlreadyOwnedByYou":
            raise
        return False
    return True


def upload(s3: Any, bucket: str, artifacts: Iterable[Artifact], prefix: str = "tinyllama") -> dict[str, str]:
    """Upload each artifact under `prefix/<sha256[:16]>/<name>`; returns {name: key}.

    An object already there under that key is not sent again (the hash is the content),
    so a change set sees a code change as a change and nothing else as one.
    """
    keys: dict[str, str] = {}
    for artifact in artifacts:
        data = artifact.path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()[:16]
        key = f"{prefix}/{digest}/{artifact.path.name if artifact.keep_name else artifact.name}"
        try:
            try:
                s3.head_object(Bucket=bucket, Key=key)
            except AWS_ERRORS as exc:
                # 403 too: without s3:ListBucket, S3 answers a missing key with 403
                if error_code(exc) not in {"403", "404", "NoSuchKey", "NotFound"}:
                    raise
                s3.put_object(Bucket=bucket, Key=key, Body=data, ServerSideEncryption="AES256")
        except AWS_ERRORS as exc:
            raise translate(exc, f"uploading {artifact.path.name}") from exc
        keys[artifact.name] = key
    return keys


def template_url(s3: Any, region: str, bucket: str, key: str) -> str:
    """The https URL CloudFormation reads a template from (the client's own endpoint when it
    has a custom one, as in tests)."""
    endpoint = str(s3.meta.endpoint_url)
    if "amazonaws.com" in endpoint:
        return f"https://{bucket}.s3.{region}.amazonaws.com/{key}"
    return f"{endpoint.rstrip('/')}/{bucket}/{key}"


def empty_bucket(s3: Any, bucket: str) -> int:
    """Delete every object version and delete marker (before deleting a stack whose data
    bucket CloudFormation cannot remove while it holds anything). Returns how many.

    list_object_versions' paginator pages through both kinds; each page is at most 1000
    entries, which is what one delete_objects takes.
    """
    removed = 0
    try:
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            batch = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                     for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
            if not batch:
                continue
            answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
            errors = answer.get("Errors", [])
            if errors:  # delete_objects answers 200 even when some deletes were refused
                first, n = errors[0], len(errors)
                raise DeployError(f"{n} object{'s' if n != 1 else ''} in {bucket} could not be deleted, e.g. "
                                  f"{first.get('Key')}: {first.get('Message', first.get('Code', ''))}",
                                  code="EmptyBucket")
            removed += len(batch)
    except AWS_ERRORS as exc:
        if error_code(exc) == "NoSuchBucket":
            return removed
        raise translate(exc, f"emptying {bucket}") from exc
    return removed


def _tls_only_policy(bucket: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]})
