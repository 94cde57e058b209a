"""What a router cold start imports: the MVP path (no queue) needs neither redis nor boto3.

Each check runs in a fresh interpreter, as a Lambda cold start does, and serves one real
request through the handler, so a lazy import that every request pays anyway shows up.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

MVP_REQUEST = """
import json, os, sys
for name in ("REDIS_URL", "REDIS_HOST", "COGNITO_USER_POOL_ID", "DATA_BUCKET", "OPENAI_SECRET"):
    os.environ.pop(name, None)
from backend.entrypoints import router
event = {"version": "2.0", "routeKey": "$default", "rawPath": "/", "rawQueryString": "",
         "headers": {"content-type": "text/plain"}, "body": "hello", "isBase64Encoded": False,
         "requestContext": {"http": {"method": "POST", "path": "/", "sourceIp": "127.0.0.1"},
                            "requestId": "r1", "stage": "$default"}}
result = router.handler(event, None)
assert result["statusCode"] == 200 and json.loads(result["body"]) == {"echo": "hello"}, result
# (Powertools itself imports botocore's bare package, ~1 ms, to tag its user agent.)
heavy = sorted(set(sys.modules) & {"redis", "boto3", "botocore.session", "botocore.client"})
assert not heavy, f"the MVP request imported {heavy}"
"""


def test_the_mvp_request_imports_neither_redis_nor_boto3() -> None:
    subprocess.run([sys.executable, "-c", MVP_REQUEST], cwd=ROOT, check=True, timeout=60)
