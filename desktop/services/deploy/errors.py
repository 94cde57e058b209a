"""Botocore failures as `DeployError`s whose message a person can act on.

Only what AWS (or the way to it) can do wrong is translated: `ClientError` (AWS said no),
`BotoCoreError` (no credentials, no network, an unknown profile), `ResponseParserError`
(an answer that is not AWS's: a proxy's or a load balancer's HTML error page, an HTTP 5xx
with no AWS body) and `WaiterError` (a wait ended in failure). Anything else is a bug and
travels on as itself.
"""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError, WaiterError
from botocore.parsers import ResponseParserError

from desktop.core.errors import AppError

# What an AWS call can fail with in a way a person can act on; catch these, nothing wider.
# ResponseParserError is no BotoCoreError, yet it is the network's doing, not ours.
AWS_ERRORS: tuple[type[Exception], ...] = (ClientError, BotoCoreError, ResponseParserError)


class DeployError(AppError):
    """A deployment step failed; the message says what happened and what to do."""

    title = "Deployment failed"


def _error(exc: BaseException) -> dict[str, str]:
    """AWS's {"Code", "Message"}: a ClientError's, or the one a waiter stopped on."""
    if isinstance(exc, ClientError):
        return dict(exc.response.get("Error", {}))
    if isinstance(exc, WaiterError):
        return dict((exc.last_response or {}).get("Error", {}))
    return {}


def error_code(exc: BaseException) -> str:
    """The AWS error code ("" when AWS gave none)."""
    return str(_error(exc).get("Code", ""))


def error_message(exc: BaseException) -> str:
    """AWS's own message (str(exc) when AWS gave none)."""
    return str(_error(exc).get("Message", "")) or str(exc)


def does_not_exist(exc: BaseException) -> bool:
    """CloudFormation's answer for a stack that is not there (a ValidationError)."""
    return isinstance(exc, ClientError) and "does not exist" in error_message(exc)


def translate(exc: ClientError | BotoCoreError | ResponseParserError | WaiterError, doing: str) -> DeployError:
    """A botocore exception as a DeployError that says what to do next."""
    name = type(exc).__name__
    code = error_code(exc)
    message = error_message(exc)
    if name in {"NoCredentialsError", "PartialCredentialsError"}:
        return DeployError(f"No AWS credentials while {doing}: choose a profile from ~/.aws or type an "
                           "access key id and secret.", code="NoCredentials")
    if name == "ProfileNotFound":
        return DeployError(f"{exc}. Pick one of the profiles in ~/.aws/config, or type keys in.",
                           code="ProfileNotFound")
    if name in {"EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError"}:
        return DeployError(f"AWS could not be reached while {doing}: check the network and the region.",
                           code="Network")
    if isinstance(exc, ResponseParserError):
        return DeployError(f"The answer while {doing} was not AWS's (an error page from a proxy, or AWS failing): "
                           "try again, and check the network or proxy if it repeats.",
                           code="NotAnAwsAnswer")
    if code in {"InvalidClientTokenId", "SignatureDoesNotMatch", "UnrecognizedClientException"}:
        return DeployError(f"AWS does not recognise these credentials ({code}) while {doing}: the access key "
                           "is wrong or was deleted.", code=code)
    if code in {"ExpiredToken", "ExpiredTokenException", "RequestExpired"}:
        return DeployError(f"The credentials have expired while {doing}: sign in again (e.g. `aws sso login`) "
                           "and retry.", code=code)
    if code in {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}:
        return DeployError(f"Permission denied while {doing}: {message} Ask your administrator for that "
                           "permission, or use a profile that has it.", code=code)
    if code:
        return DeployError(f"AWS refused while {doing}: {message} ({code})", code=code)
    if isinstance(exc, WaiterError):
        return DeployError(f"AWS did not finish {doing}: {exc.kwargs.get('reason', exc)}", code="Waiter")
    return DeployError(f"{doing[:1].upper()}{doing[1:]} failed: {exc}")
