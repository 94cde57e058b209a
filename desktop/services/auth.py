"""Cognito sign-in for the AWS profile: SRP, the new-password challenge, refresh, sign-out.

pycognito does the SRP maths and verifies tokens against the pool's JWKS. This class adds
what the app needs around it: the refresh token kept in the keyring (through
CredentialStore), a silent refresh a few minutes before the access token expires, and
errors a person can act on.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import jwt

from desktop.core.errors import (
    AuthError,
    NetworkError,
    NewPasswordRequired,
    PasswordPolicyError,
    SessionExpiredError,
    UnknownUserError,
    WrongPasswordError,
)
from desktop.services.credentials import CredentialStore

# Refresh this long before expiry, so a request never leaves with a token that dies in
# flight (Cognito access tokens live 5 min to 1 day; 60 min by default).
REFRESH_MARGIN_S = 300.0


def _default_factory(**kwargs: Any) -> Any:
    from pycognito import Cognito

    return Cognito(**kwargs)


class CognitoAuth:
    """One user pool and app client; holds the signed-in user's tokens."""

    def __init__(
        self,
        user_pool_id: str,
        client_id: str,
        region: str,
        credentials: CredentialStore,
        cognito_factory: Callable[..., Any] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.user_pool_id = user_pool_id
        self.client_id = client_id
        self.region = region
        self._credentials = credentials
        self._factory = cognito_factory or _default_factory
        self._clock = clock
        self._lock = threading.Lock()
        self._cognito: Any | None = None
        self.username: str | None = None

    # sign in -------------------------------------------------------------------------

    def _new(self, username: str, **tokens: Any) -> Any:
        return self._factory(
            user_pool_id=self.user_pool_id,
            client_id=self.client_id,
            user_pool_region=self.region,
            username=username,
            **tokens,
        )

    def sign_in(self, username: str, password: str) -> None:
        """SRP sign-in. Raises NewPasswordRequired for an invited user's first sign-in."""
        cognito = self._new(username)
        with _translated():
            cognito.authenticate(password=password)
        self._signed_in(username, cognito)

    def complete_new_password(self, username: str, password: str, new_password: str) -> None:
        """Answer the new-password challenge with the temporary and the chosen password."""
        cognito = self._new(username)
        with _translated():
            cognito.new_password_challenge(password=password, new_password=new_password)
        self._signed_in(username, cognito)

    def restore(self, username: str) -> bool:
        """Sign in silently from the keyring's refresh token; False when there is none."""
        refresh = self._credentials.get(self._key(username))
        if not refresh:
            return False
        cognito = self._new(username, refresh_token=refresh)
        try:
            with _translated(refreshing=True):
                cognito.renew_access_token()
        except SessionExpiredError:
            self._credentials.delete(self._key(username))
            raise
        self._signed_in(username, cognito)
        return True

    def _signed_in(self, username: str, cognito: Any) -> None:
        with self._lock:
            self._cognito = cognito
            self.username = username
        if cognito.refresh_token:
            self._credentials.set(self._key(username), cognito.refresh_token)

    def _key(self, username: str) -> str:
        return f"refresh-token:{self.user_pool_id}:{username}"

    # tokens --------------------------------------------------------------------------

    @property
    def signed_in(self) -> bool:
        return self._cognito is not None and bool(self._cognito.access_token)

    def expires_at(self) -> float:
        """Unix time the access token expires (0 when signed out)."""
        cognito = self._cognito
        if cognito is None or not cognito.access_token:
            return 0.0
        claims = jwt.decode(cognito.access_token, options={"verify_signature": False})
        return float(claims.get("exp", 0))

    def access_token(self) -> str | None:
        """The bearer token for the API, refreshed silently when it is about to expire.

        Safe to call from worker threads (the API client calls it before each request).
        """
        with self._lock:
            cognito = self._cognito
            if cognito is None or not cognito.access_token:
                return None
            if self.expires_at() - self._clock() < REFRESH_MARGIN_S:
                with _translated(refreshing=True):
                    cognito.renew_access_token()
            return str(cognito.access_token)

    def sign_out(self) -> None:
        """Forget locally, then global sign-out (revokes the refresh token everywhere)."""
        self.revoke(self.forget())

    def forget(self) -> Any:
        """Drop the tokens here and in the keyring at once (no network); returns what
        `revoke` needs. Forgetting happens even offline: the person asked to be out."""
        with self._lock:
            cognito, self._cognito = self._cognito, None
            username, self.username = self.username, None
        if username:
            self._credentials.delete(self._key(username))
        return cognito

    @staticmethod
    def revoke(cognito: Any) -> None:
        """Global sign-out on the server (network; best effort, run it off the UI thread)."""
        if cognito is not None and cognito.access_token:
            with contextlib.suppress(Exception):
                cognito.logout()


@contextlib.contextmanager
def _translated(refreshing: bool = False) -> Iterator[None]:
    """Turn pycognito and botocore failures into AuthError subclasses."""
    try:
        yield
    except (AuthError, NetworkError):
        raise
    except Exception as exc:
        raise _translate(exc, refreshing) from None


def _translate(exc: BaseException, refreshing: bool) -> Exception:
    from botocore.exceptions import ClientError, ConnectionError, HTTPClientError
    from pycognito.exceptions import ForceChangePasswordException, TokenVerificationException

    if isinstance(exc, ForceChangePasswordException):
        return NewPasswordRequired(
            "This is your first sign-in: please choose a new password.",
            code="NEW_PASSWORD_REQUIRED",
        )
    if isinstance(exc, ConnectionError | HTTPClientError):
        return NetworkError("Can't reach the sign-in service. Check your network and try again.")
    if isinstance(exc, TokenVerificationException):
        return AuthError(
            "The sign-in answer could not be verified. Check the profile's user pool and "
            "region, or the computer's clock."
        )
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        text = exc.response.get("Error", {}).get("Message", "")
        if code == "NotAuthorizedException":
            if refreshing:
                return SessionExpiredError("Your session has ended. Please sign in again.", code=code)
            return WrongPasswordError("Wrong user name or password.", code=code)
        if code == "UserNotFoundException":
            return UnknownUserError("There is no user with that name in this pool.", code=code)
        if code in ("InvalidPasswordException", "InvalidParameterException") and not refreshing:
            return PasswordPolicyError(
                f"That password is not accepted: {text or 'it does not meet the policy.'}",
                code=code,
            )
        if code == "PasswordResetRequiredException":
            return AuthError("Your password must be reset by an administrator.", code=code)
        if code == "UserNotConfirmedException":
            return AuthError("This account is not confirmed yet.", code=code)
        if code in ("TooManyRequestsException", "LimitExceededException"):
            return AuthError("Too many attempts; wait a minute and try again.", code=code)
        if code == "ResourceNotFoundException":
            return AuthError(
                "The user pool or app client in this profile does not exist. "
                "Check the profile settings.",
                code=code,
            )
        return AuthError(f"Sign-in failed: {text or code}.", code=code)
    if isinstance(exc, ValueError):
        return AuthError(f"Sign-in failed: {exc}")
    return AuthError(f"Sign-in failed unexpectedly ({type(exc).__name__}).")
