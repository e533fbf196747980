"""The claim rules and sign-in secrets of single sign-on, free of I/O."""

from __future__ import annotations

import re
from typing import Any

import pytest

from modelgates.models import ProviderIdentity
from modelgates.oidc import (
    DOMAIN_NOT_ALLOWED,
    NO_EMAIL,
    NOT_VERIFIED,
    Claims,
    OidcConfig,
    admin,
    claims_of,
    groups_of,
    is_verified,
    refusal,
)
from modelgates.services.sso import SignInSecrets, SignOnService
from modelgates.settings import Settings

ISSUER = "https://idp.example.com"


def config(**overrides: Any) -> OidcConfig:
    settings = Settings(
        public_url="https://gw.example.com/",
        oidc_issuer=ISSUER,
        oidc_client_id="gw",
        oidc_client_secret="s3cret",
        oidc_allowed_domains=" Example.com, @team.example.org ,",
        oidc_admin_groups="admins, gateway-admins",
        oidc_scopes="openid  email profile",
    )
    built = OidcConfig.from_settings(settings.with_overrides(**overrides))
    assert built is not None
    return built


def person(
    email: str | None, verified: bool = True, groups: frozenset[str] = frozenset()
) -> Claims:
    return Claims(ProviderIdentity(ISSUER, "sub-1"), email, verified, groups)


def test_config_from_settings() -> None:
    built = config()
    assert built.redirect_uri == "https://gw.example.com/auth/oidc/callback"
    assert built.discovery_url == ISSUER + "/.well-known/openid-configuration"
    assert built.allowed_domains == {"example.com", "team.example.org"}
    assert built.admin_groups == {"admins", "gateway-admins"}
    assert built.scopes == "openid email profile"
    assert "s3cret" not in repr(built)
    assert OidcConfig.from_settings(Settings()) is None


@pytest.mark.parametrize(
    ("value", "verified"),
    [(True, True), ("true", True), ("TRUE", True), (False, False), ("false", False),
     (None, False), (1, False), ("yes", False)],
)  # fmt: skip
def test_email_verified_true_or_the_string_true(value: object, verified: bool) -> None:
    assert is_verified(value) is verified


def test_groups_claim() -> None:
    assert groups_of(["a", "b", 3]) == {"a", "b"}
    assert groups_of("a") == {"a"}
    assert groups_of(None) == frozenset()
    assert groups_of({"a": 1}) == frozenset()


def test_claims_from_the_id_token_or_userinfo() -> None:
    id_token = {"sub": "s", "email": "A@Example.com", "email_verified": True}
    assert claims_of(ISSUER, id_token, None) == Claims(
        ProviderIdentity(ISSUER, "s"), "a@example.com", True, frozenset()
    )
    # The e-mail and its verification are one pair: never mixed from two sources.
    mixed = claims_of(
        ISSUER,
        {"sub": "s", "email": "a@example.com"},
        {"sub": "s", "email": "b@example.com", "email_verified": True, "groups": ["g"]},
    )
    assert (mixed.email, mixed.email_verified, mixed.groups) == (
        "a@example.com",
        False,
        frozenset({"g"}),
    )
    info = claims_of(ISSUER, {"sub": "s"}, {"sub": "s", "email": "b@example.com",
                                             "email_verified": "true"})  # fmt: skip
    assert (info.email, info.email_verified) == ("b@example.com", True)
    assert claims_of(ISSUER, {"sub": "s", "email": "  "}, None).email is None


def test_refusals_in_order() -> None:
    rules = config()
    assert refusal(person(None), rules) == NO_EMAIL
    assert refusal(person("x@elsewhere.example", verified=False), rules) == NOT_VERIFIED
    assert refusal(person("x@elsewhere.example"), rules) == DOMAIN_NOT_ALLOWED
    assert refusal(person("x@sub.example.com"), rules) == DOMAIN_NOT_ALLOWED  # exact domains
    assert refusal(person("x@example.com"), rules) is None
    assert refusal(person("x@team.example.org"), rules) is None
    assert refusal(person("x@anywhere.example"), config(oidc_allowed_domains=None)) is None
    assert (NOT_VERIFIED, DOMAIN_NOT_ALLOWED) == (
        "this e-mail address is not verified",
        "this e-mail domain is not allowed",
    )


def test_admin_from_groups() -> None:
    rules = config()
    assert admin(person("x@example.com", groups=frozenset({"gateway-admins"})), rules) is True
    assert admin(person("x@example.com", groups=frozenset({"staff"})), rules) is False
    assert admin(person("x@example.com"), config(oidc_admin_groups=None)) is None


def test_sign_in_secrets_are_derived_per_browser_and_state() -> None:
    browser = SignOnService.browser_secret(None)
    assert len(browser) == 43
    assert SignOnService.browser_secret(browser) == browser
    assert SignOnService.browser_secret("short") != "short"
    one = SignInSecrets.derive(browser, "state-1")
    assert one == SignInSecrets.derive(browser, "state-1")
    assert one.code_verifier != SignInSecrets.derive(browser, "state-2").code_verifier
    assert one.nonce != SignInSecrets.derive(SignOnService.browser_secret(None), "state-1").nonce
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", one.code_verifier)  # RFC 7636 §4.1
    assert one.nonce != one.code_verifier
