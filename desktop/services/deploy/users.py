"""The stack's first Cognito user, with a temporary password shown once or an e-mailed invitation."""

from __future__ import annotations

import secrets
import string
from typing import Any

from desktop.services.deploy.errors import AWS_ERRORS, DeployError, error_code, translate


def temporary_password(length: int = 16) -> str:
    """A password Cognito's default policy accepts: upper, lower, digit and symbol."""
    symbols = "!#$%&*+-=?@^_"
    alphabet = string.ascii_letters + string.digits + symbols
    while True:
        pw = "".join(secrets.choice(alphabet) for _ in range(length))
        if (any(c.islower() for c in pw) and any(c.isupper() for c in pw)
                and any(c.isdigit() for c in pw) and any(c in symbols for c in pw)):
            return pw


def create_first_user(cognito: Any, user_pool_id: str, username: str, email: str, *,
                      invite_by_email: bool) -> str:
    """Cognito admin-create-user. Returns the temporary password to show once, or "" when
    Cognito e-mails an invitation instead."""
    attributes = [{"Name": "email", "Value": email}, {"Name": "email_verified", "Value": "true"}]
    kwargs: dict[str, Any] = {"UserPoolId": user_pool_id, "Username": username, "UserAttributes": attributes}
    password = ""
    if invite_by_email:
        kwargs["DesiredDeliveryMediums"] = ["EMAIL"]
    else:
        password = temporary_password()
        kwargs.update(TemporaryPassword=password, MessageAction="SUPPRESS")
    try:
        cognito.admin_create_user(**kwargs)
    except AWS_ERRORS as exc:
        if error_code(exc) == "UsernameExistsException":
            raise DeployError(f"A user named {username} already exists in this pool.", code="UserExists") from exc
        raise translate(exc, f"creating the user {username}") from exc
    return password
