"""The desktop app's errors: each message is something a person can read and act on.

Services translate what goes wrong below them (requests, botocore, keyring) into these at
their edge, so views only ever show `str(error)` and never a traceback.
"""

from __future__ import annotations


class AppError(Exception):
    """Base of every error the app shows; `str()` is the person-readable message."""

    title = "Something went wrong"

    def __init__(self, message: str, *, code: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class NetworkError(AppError):
    """The API could not be reached at all (no network, stack stopped, timeout)."""

    title = "Can't reach TinyLlama"


class ApiError(AppError):
    """The API answered with an error the person should see as it is."""

    title = "The API refused"

    def __init__(self, message: str, *, code: str = "", status: int = 0) -> None:
        super().__init__(message, code=code)
        self.status = status


class BudgetExceededError(ApiError):
    """The budget guard refused to wake the GPU; the cost panel is where to act."""

    title = "Budget reached"


class NotFoundError(ApiError):
    """The request id is unknown to the API (expired, or someone else's)."""

    title = "Not found"


class UnavailableError(ApiError):
    """The API is up but a dependency is away; trying again later helps."""

    title = "Temporarily unavailable"


class AuthError(AppError):
    """Signing in or staying signed in failed."""

    title = "Sign-in failed"


class WrongPasswordError(AuthError):
    """Cognito refused the user name and password pair."""


class UnknownUserError(AuthError):
    """No such user in the pool."""


class SessionExpiredError(AuthError):
    """The refresh token is no longer valid; the person has to sign in again."""

    title = "Signed out"


class NewPasswordRequired(AuthError):
    """An invited user signs in for the first time and must choose a password."""

    title = "Choose a new password"


class PasswordPolicyError(AuthError):
    """The new password does not meet the pool's policy."""

