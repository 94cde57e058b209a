"""The MVP stack's prompt log: each echoed prompt and its reply as one S3 object."""

from __future__ import annotations

import json
import time
from typing import Any


class S3PromptLog:
    """Writes `prompts/YYYY/MM/DD/<request id>.json` into the data bucket."""

    def __init__(self, bucket: str, *, client: Any = None):
        self.bucket = bucket
        self.client = client

    def store(self, prompt: str, request_id: str) -> dict[str, str]:
        if self.client is None:
            import boto3  # only on this path

            self.client = boto3.client("s3")
        key = time.strftime("prompts/%Y/%m/%d/", time.gmtime()) + f"{request_id}.json"
        body = json.dumps({"prompt": prompt, "reply": prompt, "at": time.time()})
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body.encode(), ContentType="application/json")
        return {"stored": key}
