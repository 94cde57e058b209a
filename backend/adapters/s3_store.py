"""The MVP stack's extras on `POST /`: the prompt log in S3 and the OpenAI key check."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

log = logging.getLogger("tinyllama.router")


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


class MvpEcho:
    """What the MVP's echo does besides echoing: log the prompt (when `DATA_BUCKET` is set)
    and read the OpenAI key from Secrets Manager at run time (when `OPENAI_SECRET` names
    it), cached for the life of the function; the answer says whether the key is there,
    never what it is."""

    def __init__(self, prompt_log: S3PromptLog | None = None, openai_secret: str | None = None,
                 secret_max_age_s: int = 3600):
        self.prompt_log = prompt_log
        self.openai_secret = openai_secret
        self.secret_max_age_s = secret_max_age_s

    def store(self, prompt: str, request_id: str) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.openai_secret:
            from aws_lambda_powertools.utilities.parameters import get_secret  # boto3: only here

            try:
                key = get_secret(self.openai_secret, max_age=self.secret_max_age_s)
                out["openai_key"] = "configured" if key else "empty"
            except Exception as exc:  # the echo still answers; the log says why
                log.warning("OpenAI key unavailable from %s: %s", self.openai_secret, exc.__class__.__name__)
                out["openai_key"] = "unavailable"
        if self.prompt_log is not None:
            out.update(self.prompt_log.store(prompt, request_id))
        return out
