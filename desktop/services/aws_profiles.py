"""The AWS profiles a person can pick: names from ~/.aws/config and ~/.aws/credentials.

Only names: the keys stay in those files (or in SSO caches), never in the app's settings.
AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE move both files, as for the AWS CLI.
"""

from __future__ import annotations


def available_profiles() -> list[str]:
    """Profile names, sorted; empty when there are none or the config cannot be parsed."""
    import boto3
    from botocore.exceptions import BotoCoreError

    try:
        return sorted(boto3.session.Session().available_profiles)
    except BotoCoreError:  # a damaged config file: offer typed keys / the default chain instead
        return []
