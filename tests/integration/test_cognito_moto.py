"""CognitoVerifier against real tokens from Cognito as moto's server mode hands them out.

The app code is unmodified: only the standard endpoint override is set, as it would be on
a developer's machine. moto signs every pool's tokens with one key (kid "dummy") and
stamps the real Cognito issuer, so the issuer check is what keeps pools apart here.
"""

from __future__ import annotations

import base64
import json

import pytest

from backend.adapters import jwt_verify as jv
from backend.adapters.jwt_verify import CognitoVerifier, claims_from_bearer
from backend.core.errors import Unauthorized
from tests.fixtures.aws import (  # noqa: F401  (fixtures are found by name)
    REGION,
    aws_env,
    cognito_client,
    make_app_client,
    make_cognito_user,
    moto_server,
    sign_in,
)

MOTO_SCOPE = "aws.cognito.signin.user.admin"  # what moto puts in every access token


@pytest.fixture
def endpoint(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> str:  # noqa: F811
    for name in ("COGNITO_JWKS", "AWS_ENDPOINT_URL", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", aws_env)
    return aws_env


def _unverified(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_real_access_token_is_accepted(endpoint):
    user = make_cognito_user(endpoint)
    tokens = sign_in(endpoint, user)
    verifier = CognitoVerifier(REGION, user.pool_id, user.client_id, required_scope=MOTO_SCOPE)

    assert verifier.jwks_url == f"{endpoint}/{user.pool_id}/.well-known/jwks.json"
    claims = claims_from_bearer(f"Bearer {tokens['AccessToken']}", verifier)
    assert claims["token_use"] == "access"
    assert claims["client_id"] == user.client_id
    assert claims["username"] == user.username
    # moto 5.x stamps the real Cognito issuer even in server mode.
    assert claims["iss"] == f"https://cognito-idp.{REGION}.amazonaws.com/{user.pool_id}"


def test_route_scope_missing_from_the_real_token_is_refused(endpoint):
    user = make_cognito_user(endpoint)
    access = sign_in(endpoint, user)["AccessToken"]
    verifier = CognitoVerifier(REGION, user.pool_id, user.client_id, required_scope="tinyllama/prompts")
    with pytest.raises(Unauthorized) as info:
        verifier.verify(access)
    assert (info.value.status, info.value.code) == (403, "insufficient_scope")


def test_real_id_token_is_refused_on_an_access_route(endpoint):
    user = make_cognito_user(endpoint)
    id_token = sign_in(endpoint, user)["IdToken"]
    access_route = CognitoVerifier(REGION, user.pool_id, user.client_id)
    with pytest.raises(Unauthorized) as info:
        access_route.verify(id_token)
    assert info.value.message == jv.MSG_ID_ON_ACCESS
    # ...while it is a good id token where one is wanted.
    id_route = CognitoVerifier(REGION, user.pool_id, user.client_id, token_use="id")
    assert id_route.verify(id_token)["cognito:username"] == user.username


def test_token_of_another_app_client_is_refused(endpoint):
    user = make_cognito_user(endpoint)
    other_client = make_app_client(endpoint, user.pool_id)
    other_access = sign_in(endpoint, user, client_id=other_client)["AccessToken"]
    assert _unverified(other_access)["client_id"] == other_client

    verifier = CognitoVerifier(REGION, user.pool_id, user.client_id)
    with pytest.raises(Unauthorized) as info:
        verifier.verify(other_access)
    assert info.value.message == jv.MSG_CLIENT
    # The same token is fine for the client it was issued to.
    assert CognitoVerifier(REGION, user.pool_id, other_client).verify(other_access)


def test_token_of_another_pool_is_refused(endpoint):
    # Same signing key in every moto pool: only `iss` tells them apart.
    ours = make_cognito_user(endpoint)
    theirs = make_cognito_user(endpoint)
    their_access = sign_in(endpoint, theirs)["AccessToken"]
    verifier = CognitoVerifier(REGION, ours.pool_id, theirs.client_id)
    with pytest.raises(Unauthorized) as info:
        verifier.verify(their_access)
    assert info.value.message == jv.MSG_ISSUER


def test_pycognito_style_cognito_jwks_document_works(endpoint, monkeypatch):
    user = make_cognito_user(endpoint)
    access = sign_in(endpoint, user)["AccessToken"]
    import requests

    jwks = requests.get(f"{endpoint}/{user.pool_id}/.well-known/jwks.json", timeout=10).json()
    monkeypatch.setenv("COGNITO_JWKS", json.dumps(jwks))
    verifier = CognitoVerifier(REGION, user.pool_id, user.client_id)
    assert verifier.jwks_url is None
    assert verifier.verify(access)["username"] == user.username


def test_user_password_auth_checks_the_password(endpoint):
    # The fixture's sign-in flow is one where moto really checks the password.
    user = make_cognito_user(endpoint)
    with pytest.raises(cognito_client(endpoint).exceptions.NotAuthorizedException):
        sign_in(endpoint, user, password="wrong-" + user.password)
