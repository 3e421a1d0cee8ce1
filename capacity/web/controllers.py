"""Pages (HTML shells; data comes from the API) and the browser's login and logout."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.exceptions import NotAuthorizedException, NotFoundException
from litestar.params import JSONBody
from litestar.response import Redirect, Template

from capacity.auth.controllers import TokenRequest
from capacity.auth.models import User
from capacity.auth.oidc import ATTEMPT_COOKIE, ATTEMPT_SECONDS, ProviderUnavailable, SignInRefused, match_user
from capacity.auth.revocation import Presented
from capacity.auth.security import SESSION_COOKIE, issue_token
from capacity.auth.service import authenticate, revoke_token
from capacity.deps import DbDep, SettingsDep
from capacity.settings import Settings

# The pages besides login, by path: the role that lands there after a login (if one does) and the title.
# Each is a shell, its template named after the path; its data comes from the API.
SHELLS: dict[str, tuple[str | None, str]] = {
    "/set-password": (None, "Set your password"),
    "/bed-manager": ("bed_manager", "Bed manager"),
    "/amhp": ("amhp", "Find a place"),
    "/conveyance": ("conveyance", "Conveyance"),
    "/commissioner": ("commissioner", "Commissioner"),
    "/admin": ("admin", "Administration"),
    "/region": (None, "Region"),
}
# Where each role lands after a login: (path, title).
PAGES = {role: (path, title) for path, (role, title) in SHELLS.items() if role is not None}


def session_cookie(request: Request[Any, Any, Any], settings: Settings, user: User) -> Cookie:
    """The browser's session after a login (password or single sign-on)."""
    jwt_auth = request.app.state.jwt_auth
    token = issue_token(jwt_auth, user)
    # The token lives only in an HttpOnly cookie: page scripts never see it.
    return Cookie(
        key=SESSION_COOKIE,
        value=f"Bearer {token}",
        httponly=True,
        samesite="strict",
        secure=jwt_auth.secure,
        max_age=settings.token_minutes * 60,
        path="/",
    )


def login_page(settings: Settings, sso_error: str | None = None, status_code: int = 200) -> Template:
    context = {"demo": settings.demo, "sso": settings.oidc_issuer is not None, "sso_error": sso_error}
    return Template("login.html", context=context, status_code=status_code)


class WebController(Controller):
    include_in_schema = False
    opt = {"exclude_from_auth": True}

    @get("/")
    async def login_page(self, settings: SettingsDep) -> Template:
        return login_page(settings)

    @post("/login", status_code=200)
    async def login(
        self,
        request: Request[Any, Any, Any],
        db: DbDep,
        settings: SettingsDep,
        data: JSONBody[TokenRequest],
    ) -> Response[dict[str, str]]:
        client = request.client.host if request.client else "unknown"
        state = request.app.state
        user = await authenticate(db, state.login_throttle, state.password_checks, data.username, data.password, client)
        page, _ = PAGES[user.role]
        return Response({"role": user.role, "page": page}, cookies=[session_cookie(request, settings, user)])

    @get("/login/oidc")
    async def sso_begin(self, request: Request[Any, Any, Any], settings: SettingsDep) -> Response[Any]:
        """Off to the single sign-on provider, remembering the attempt in a cookie for the way back."""
        sso = request.app.state.sso
        if sso is None:
            raise NotFoundException("single sign-on is not set up here")
        try:
            url, attempt = await sso.begin()
        except ProviderUnavailable:
            return login_page(settings, "The single sign-on service did not answer. Try again soon.", 503)
        # Lax, not Strict: the provider's redirect back here is a navigation from another site.
        cookie = Cookie(
            key=ATTEMPT_COOKIE,
            value=attempt,
            httponly=True,
            samesite="lax",
            secure=settings.secure_cookies,
            max_age=ATTEMPT_SECONDS,
            path="/login/oidc",
        )
        return Redirect(url, cookies=[cookie])

    @get("/login/oidc/callback")
    async def sso_callback(self, request: Request[Any, Any, Any], db: DbDep, settings: SettingsDep) -> Response[Any]:
        sso = request.app.state.sso
        if sso is None:
            raise NotFoundException("single sign-on is not set up here")
        query = {
            k: v for k in ("code", "state", "iss", "error", "error_description") if (v := request.query_params.get(k))
        }
        try:
            user = await match_user(db, await sso.finish(request.cookies.get(ATTEMPT_COOKIE), query))
        except SignInRefused as refused:
            response: Response[Any] = login_page(settings, f"You could not be signed in: {refused}.", 403)
        except ProviderUnavailable:
            response = login_page(settings, "The single sign-on service did not answer. Try again soon.", 503)
        else:
            response = Redirect(PAGES[user.role][0], cookies=[session_cookie(request, settings, user)])
        response.delete_cookie(ATTEMPT_COOKIE, path="/login/oidc")  # an attempt is used once
        return response

    @post("/logout", status_code=200)
    async def logout(self, request: Request[Any, Any, Any]) -> Response[dict[str, str]]:
        # The cookie's token is revoked, not only forgotten by this browser: a copy of it is refused too.
        encoded = request.cookies.get(SESSION_COOKIE, "").split(" ")[-1]
        if encoded:
            try:
                token = request.app.state.jwt_auth.decode(encoded)
            except NotAuthorizedException:
                pass  # expired or not ours: nothing to revoke
            else:
                await revoke_token(request.app.state.revocations, Presented.of(token))
        response = Response({"page": "/"})
        response.delete_cookie(SESSION_COOKIE)
        return response

    @get(list(SHELLS))
    async def shell(self, request: Request[Any, Any, Any]) -> Template:
        path = request.scope["path_template"]  # the one of SHELLS this request was routed by
        _, title = SHELLS[path]
        return Template(f"{path.strip('/').replace('-', '_')}.html", context={"title": title})
