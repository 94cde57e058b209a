"""Cognito sign-in against moto's server, with unmodified pycognito.

pycognito finds moto through the standard AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER and
verifies tokens with the pool's JWKS given in COGNITO_JWKS (DESIGN.md). moto's SRP flow
accepts a wrong password, so the wrong-password case is a botocore Stubber answering the
SRP challenge response the way Cognito does (NotAuthorizedException).
"""

from __future__ import annotations

import uuid

import pytest

from desktop.core.errors import (
    NetworkError,
    NewPasswordRequired,
    PasswordPolicyError,
    SessionExpiredError,
    UnknownUserError,
    WrongPasswordError,
)
from desktop.services.auth import CognitoAuth
from desktop.services.credentials import CredentialStore, MemoryKeyring
from tests.fixtures.aws import REGION, CognitoUser, cognito_client


def _auth(user: CognitoUser, store: CredentialStore, **kw: object) -> CognitoAuth:
    return CognitoAuth(user.pool_id, user.client_id, REGION, store, **kw)  # type: ignore[arg-type]


def test_srp_sign_in_stores_refresh_token_and_restores(user: CognitoUser) -> None:
    store = CredentialStore(MemoryKeyring())
    auth = _auth(user, store)
    auth.sign_in(user.username, user.password)
    assert auth.signed_in and auth.username == user.username
    assert store.get(f"refresh-token:{user.pool_id}:{user.username}")
    assert auth.access_token()

    later = _auth(user, store)
    assert later.restore(user.username) is True
    assert later.access_token()
    assert _auth(user, store).restore("someone-else") is False


def test_token_is_refreshed_silently_before_expiry(user: CognitoUser) -> None:
    auth = _auth(user, CredentialStore(MemoryKeyring()))
    auth.sign_in(user.username, user.password)
    first = auth.access_token()
    auth._clock = lambda: auth.expires_at() - 60  # within the refresh margin
    second = auth.access_token()
    assert second and second != first


def test_new_password_challenge(user: CognitoUser, aws_env: str) -> None:
    name = f"invited-{uuid.uuid4().hex[:6]}"
    cognito_client(aws_env).admin_create_user(
        UserPoolId=user.pool_id, Username=name, TemporaryPassword="Temp-Pass-1!",
        MessageAction="SUPPRESS",
    )
    auth = _auth(user, CredentialStore(MemoryKeyring()))
    with pytest.raises(NewPasswordRequired, match="choose a new password"):
        auth.sign_in(name, "Temp-Pass-1!")
    assert not auth.signed_in
    auth.complete_new_password(name, "Temp-Pass-1!", "Chosen-Pass-22!")
    assert auth.signed_in and auth.username == name


def test_unknown_user(user: CognitoUser) -> None:
    with pytest.raises(UnknownUserError, match="no user with that name"):
        _auth(user, CredentialStore(MemoryKeyring())).sign_in("nobody-here", "x")


def test_sign_out_is_global_and_forgets_the_token(user: CognitoUser) -> None:
    store = CredentialStore(MemoryKeyring())
    auth = _auth(user, store)
    auth.sign_in(user.username, user.password)
    refresh = store.get(f"refresh-token:{user.pool_id}:{user.username}")
    auth.sign_out()
    assert not auth.signed_in and store.get(f"refresh-token:{user.pool_id}:{user.username}") is None
    # The refresh token was revoked on the server too: restoring with it fails.
    store.set(f"refresh-token:{user.pool_id}:{user.username}", refresh or "")
    with pytest.raises(SessionExpiredError, match="sign in again"):
        _auth(user, store).restore(user.username)
    assert store.get(f"refresh-token:{user.pool_id}:{user.username}") is None


def stubbed_cognito(error_code: str, message: str):  # type: ignore[no-untyped-def]
    """A pycognito factory whose client answers SRP like Cognito does for a bad password."""
    from botocore.stub import ANY, Stubber
    from pycognito import Cognito

    def factory(**kwargs):  # type: ignore[no-untyped-def]
        cognito = Cognito(**kwargs)
        stub = Stubber(cognito.client)
        stub.add_response(
            "initiate_auth",
            {
                "ChallengeName": "PASSWORD_VERIFIER",
                "ChallengeParameters": {
                    "USER_ID_FOR_SRP": kwargs["username"], "SRP_B": "ab" * 128, "SALT": "cd" * 16,
                    "SECRET_BLOCK": "c2VjcmV0", "USERNAME": kwargs["username"],
                },
            },
            {"AuthFlow": "USER_SRP_AUTH", "AuthParameters": ANY, "ClientId": ANY},
        )
        stub.add_client_error("respond_to_auth_challenge", error_code, message, 400)
        stub.activate()
        return cognito

    return factory


def test_wrong_password(user: CognitoUser) -> None:
    factory = stubbed_cognito("NotAuthorizedException", "Incorrect username or password.")
    auth = _auth(user, CredentialStore(MemoryKeyring()), cognito_factory=factory)
    with pytest.raises(WrongPasswordError, match="Wrong user name or password"):
        auth.sign_in(user.username, "not-the-password")
    assert not auth.signed_in


def test_weak_new_password(user: CognitoUser) -> None:
    factory = stubbed_cognito("InvalidPasswordException", "Password must have numbers.")
    auth = _auth(user, CredentialStore(MemoryKeyring()), cognito_factory=factory)
    with pytest.raises(PasswordPolicyError, match="must have numbers"):
        auth.complete_new_password(user.username, "Temp-Pass-1!", "weak")


def test_no_network(user: CognitoUser, monkeypatch: pytest.MonkeyPatch) -> None:
    from backend.entrypoints.local import free_port

    monkeypatch.setenv("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(NetworkError, match="Can't reach the sign-in service"):
        _auth(user, CredentialStore(MemoryKeyring())).sign_in(user.username, user.password)
