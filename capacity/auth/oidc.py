"""Single sign-on with OpenID Connect, as NHS organisations sign in (NHS CIS2, Entra ID): optional, on when
CAPACITY_OIDC_ISSUER is set.

The authorization code flow with PKCE, through Authlib's OpenID client (discovery, the code exchange, the
ID token's signature, issuer, audience, expiry and nonce). The provider only proves who a person is;
roles and scope stay in capacity: the person is matched to an existing, active user by the subject an
admin recorded for them, or else by an e-mail address the provider has verified that an admin recorded.
Nobody is ever created here: an unknown person is refused.

Between leaving for the provider and coming back, the browser keeps the attempt (state, nonce and PKCE
verifier) in a short-lived cookie signed with a key of its own, so any instance can finish it.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

import httpx2
import structlog
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey
from sqlalchemy import func, select

from capacity.auth.models import User
from capacity.db.engine import Database
from capacity.settings import Settings

log = structlog.get_logger(__name__)

ATTEMPT_COOKIE = "capacity_sso"
ATTEMPT_SECONDS = 10 * 60  # time to sign in at the provider and come back


class SignInRefused(Exception):
    """The person may not come in this way; the message says why, in words for them."""


class ProviderUnavailable(Exception):
    """The sign-in provider did not answer: try again, or log in with a password."""


@dataclass(frozen=True)
class Attempt:
    state: str
    nonce: str
    code_verifier: str


def _openid_client(**options: Any) -> Any:
    """Authlib's OpenID client without a web framework: the attempt is kept by the browser, not a session.
    Authlib is imported only here, when single sign-on is configured: it costs every process 12 MB."""
    from authlib.integrations.base_client import BaseApp
    from authlib.integrations.base_client.async_app import AsyncOAuth2Mixin
    from authlib.integrations.base_client.async_openid import AsyncOpenIDMixin
    from authlib.integrations.httpx_client import AsyncOAuth2Client

    class OpenIDClient(AsyncOAuth2Mixin, AsyncOpenIDMixin, BaseApp):
        client_cls = AsyncOAuth2Client

    return OpenIDClient(framework=None, **options)


class SingleSignOn:
    def __init__(self, settings: Settings) -> None:
        assert settings.oidc_issuer and settings.oidc_client_id and settings.oidc_client_secret
        self.issuer = settings.oidc_issuer
        self.redirect_uri = settings.oidc_redirect_uri
        self._client = _openid_client(
            client_id=settings.oidc_client_id,
            client_secret=settings.oidc_client_secret,
            server_metadata_url=f"{self.issuer.rstrip('/')}/.well-known/openid-configuration",
            client_kwargs={"scope": "openid email", "code_challenge_method": "S256", "timeout": 10},
        )
        # Its own key, so that an attempt cookie can never pass for a session token or the reverse.
        self._key = OctKey.import_key(
            hashlib.sha256(b"capacity sso attempt\0" + settings.signing_key().encode()).digest()
        )

    async def begin(self) -> tuple[str, str]:
        """Where to send the browser, and the attempt cookie's value to set before it goes."""
        await self._metadata()
        found = await self._call(self._client.create_authorization_url(self.redirect_uri))
        claims = {
            "state": found["state"],
            "nonce": found["nonce"],
            "verifier": found["code_verifier"],
            "exp": int(time.time()) + ATTEMPT_SECONDS,
        }
        return found["url"], jwt.encode({"alg": "HS256"}, claims, self._key)

    async def finish(self, cookie: str | None, query: dict[str, str]) -> dict[str, Any]:
        """The provider's answer checked against the browser's attempt: the ID token's claims."""
        attempt = self._attempt(cookie)
        if query.get("error"):
            # The person cancelled, or the provider would not sign them in.
            raise SignInRefused(query.get("error_description") or f"the sign-in provider said {query['error']}")
        if not query.get("code") or query.get("state") != attempt.state:
            raise SignInRefused("this sign-in did not start here, or was already used: start again")
        if query.get("iss") not in (None, self.issuer):  # RFC 9207: the answer is from another provider
            raise SignInRefused("this answer came from another sign-in provider: start again")
        metadata = await self._metadata()
        token = await self._call(
            self._client.fetch_access_token(
                redirect_uri=self.redirect_uri, code=query["code"], code_verifier=attempt.code_verifier
            )
        )
        claims = await self._call(self._client.parse_id_token(token, nonce=attempt.nonce))
        if claims is None:
            raise SignInRefused("the sign-in provider sent no ID token")
        claims = dict(claims)
        if "email" not in claims and metadata.get("userinfo_endpoint"):
            # Many providers keep the ID token short and give the e-mail address at the userinfo endpoint.
            info = await self._call(self._client.userinfo(token=token))
            if info.get("sub") != claims["sub"]:  # OpenID Connect Core 5.3.2: it must be the same person
                raise SignInRefused("the sign-in provider's answers were about two different people")
            claims |= {k: info[k] for k in ("email", "email_verified") if k in info}
        return claims

    def _attempt(self, cookie: str | None) -> Attempt:
        if not cookie:
            raise SignInRefused("this sign-in did not start here, or took longer than 10 minutes: start again")
        try:
            token = jwt.decode(cookie, self._key, algorithms=["HS256"])
            jwt.JWTClaimsRegistry(exp={"essential": True}).validate(token.claims)
        except (JoseError, ValueError):
            raise SignInRefused(
                "this sign-in took longer than 10 minutes, or did not start here: start again"
            ) from None
        claims = token.claims
        return Attempt(claims["state"], claims["nonce"], claims["verifier"])

    async def _metadata(self) -> dict[str, Any]:
        metadata = await self._call(self._client.load_server_metadata())
        # A provider that names another issuer than the one configured is not the one we trust.
        if metadata.get("issuer") != self.issuer:
            raise ProviderUnavailable(f"the provider at {self.issuer} names itself {metadata.get('issuer')!r}")
        return metadata

    @staticmethod
    async def _call(step: Any) -> Any:
        from authlib.integrations.base_client import OAuthError  # loaded already by _openid_client

        try:
            return await step
        except (OAuthError, JoseError) as e:
            raise SignInRefused(f"the sign-in provider's answer was not valid ({e})") from None
        except (httpx2.HTTPError, ValueError) as e:  # unreachable, or answering with an error page
            raise ProviderUnavailable(str(e) or type(e).__name__) from None


async def match_user(db: Database, claims: dict[str, Any]) -> User:
    """The capacity user this signed-in person is: by the subject an admin recorded, or else by a
    verified e-mail address an admin recorded on a user with no subject recorded. Never created."""
    subject, email = str(claims["sub"]), claims.get("email")
    async with db.read_sessions() as session:
        user = await session.scalar(select(User).where(User.oidc_subject == subject))
        if user is None and isinstance(email, str) and claims.get("email_verified") is True:
            user = await session.scalar(
                select(User).where(func.lower(User.email) == email.lower(), User.oidc_subject.is_(None))
            )
    if user is None:
        log.info("sso sign-in refused", reason="unknown person")
        known = f" ({email})" if isinstance(email, str) and claims.get("email_verified") is True else ""
        raise SignInRefused(
            f"there is no capacity account for you{known}: ask your capacity administrator to record your "
            "NHS e-mail address on your account"
        )
    if not user.active:
        log.info("sso sign-in refused", reason="inactive user", user_id=user.id)
        raise SignInRefused("your capacity account is not active: ask your capacity administrator")
    log.info("sso sign-in", user_id=user.id)
    return user
