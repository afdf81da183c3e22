"""OAuth 2.0 authorization server for the sandboxes: the authorization code
grant with PKCE and refresh tokens.

Written from RFC 6749 (sections 4.1, 5.2, 6, 10.4), RFC 7636 (PKCE) and the
vendors' documentation cited in FIDELITY.md ("OAuth 2.0 authorization code").
A sandbox application (bc.py, netsuite.py) owns one AuthorizationServer,
routes its authorization and token endpoints to it, and issues the access
tokens itself (``issue_access_token``) so that its API accepts them.

The authorization endpoint plays the customer's browser as well: the user
signs in and consents (or refuses, ``consent`` = "deny"), and the answer is
the redirect of RFC 6749 4.1.2: ``302 Location: <redirect_uri>?code=..&state=..``
or ``?error=access_denied&state=..``.  An unknown client or a redirect URI
not registered for it is never redirected to (RFC 6749 4.1.2.1, 10.15): the
user sees an error page (HTTP 400, text/html).

Control (``/_sandbox/oauth/...``, through the application's ``control``)::

    POST /_sandbox/oauth/config   {"consent": "grant"|"deny", "code_ttl": s,
                                   "refresh_ttl": s, "rotation": "none"|"replace"|"strict",
                                   "redirect_uris": [...], "access_ttl": s}
    POST /_sandbox/oauth/revoke   every refresh token (and the access tokens
                                  of the grant) stops working: consent withdrawn
    POST /_sandbox/oauth/expire   every refresh token is past its lifetime
    GET  /_sandbox/oauth/info     counts, and the settings
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
import threading
import time
import urllib.parse
from typing import Callable, Optional

from common import Request, Response

# RFC 7636 4.1: code_verifier = 43*128unreserved
_UNRESERVED = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
MAX_GRANTS = 10_000


def s256(verifier: str) -> str:
    """RFC 7636 4.2: BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


class AuthorizationServer:
    """One registered client (the embedding application) and its grants.

    ``error(req, status, error, description)`` renders the vendor's token
    error body; ``issue_access_token(req, client_id, scope, ttl)`` returns an
    access token the resource server accepts; ``revoke_access_tokens()``
    makes those tokens invalid (consent withdrawn).
    """

    def __init__(self, *, client_id: str, client_secret: str, scopes: list[str],
                 redirect_uris: list[str], rotation: str, refresh_ttl: int,
                 access_ttl: int, error: Callable[[Request, int, str, str], Response],
                 issue_access_token: Callable[[Request, str, str, int], str],
                 refresh_needs_scope: Optional[str] = None):
        self.client_id = client_id
        self.client_secret = client_secret
        self.scopes = set(scopes)
        self.error = error
        self.issue_access_token = issue_access_token
        # Entra returns a refresh token only when offline_access was granted
        self.refresh_needs_scope = refresh_needs_scope
        self.defaults = {"consent": "grant", "code_ttl": 600, "refresh_ttl": refresh_ttl,
                         "rotation": rotation, "redirect_uris": list(redirect_uris),
                         "access_ttl": access_ttl}
        self.settings = dict(self.defaults)
        self.lock = threading.Lock()
        self.codes: dict[str, dict] = {}
        self.refresh: dict[str, dict] = {}      # token -> grant info
        self.stats = {"codes_issued": 0, "codes_redeemed": 0, "refreshes": 0,
                      "rotations": 0, "invalid_grant": 0}

    def reset(self) -> None:
        with self.lock:
            self.settings = dict(self.defaults)
            self.codes.clear()
            self.refresh.clear()
            for k in self.stats:
                self.stats[k] = 0

    # -- authorization endpoint (RFC 6749 4.1.1, 4.1.2) ------------------

    def authorize(self, req: Request) -> Response:
        params: dict[str, str] = {}
        for k, v in req.params:
            if k in params:     # RFC 6749 3.1: no parameter more than once
                return self._page(400, f"The request has parameter '{k}' more than once.")
            params[k] = v
        client_id = params.get("client_id", "")
        redirect_uri = params.get("redirect_uri", "")
        if client_id != self.client_id:
            return self._page(400, f"Application with identifier '{client_id}' was not found.")
        if redirect_uri not in self.settings["redirect_uris"]:
            return self._page(400, "The redirect URI specified in the request does not match "
                                   "the redirect URIs configured for the application.")
        state = params.get("state")

        def back(**answer: str) -> Response:
            if state is not None:
                answer["state"] = state
            sep = "&" if "?" in redirect_uri else "?"
            return Response(302, b"", None,
                            [("Location", redirect_uri + sep + urllib.parse.urlencode(answer))])

        if params.get("response_type") != "code":
            return back(error="unsupported_response_type",
                        error_description="The response type must be 'code'.")
        challenge = params.get("code_challenge")
        method = params.get("code_challenge_method", "plain")
        if not challenge:       # RFC 7636 4.4.1: this server requires PKCE
            return back(error="invalid_request", error_description="code_challenge is required.")
        if method not in ("S256", "plain") or not 43 <= len(challenge) <= 128 \
                or not set(challenge) <= _UNRESERVED:
            return back(error="invalid_request",
                        error_description="Invalid code_challenge or code_challenge_method.")
        scope = params.get("scope", "")
        asked = scope.split()
        unknown = [s for s in asked if s not in self.scopes]
        if not asked or unknown:
            return back(error="invalid_scope",
                        error_description=f"The scope '{scope}' is not valid for this client.")
        if self.settings["consent"] != "grant":
            return back(error="access_denied",
                        error_description="The user has denied access to the scope requested "
                                          "by the client application.")
        code = secrets.token_urlsafe(32)
        with self.lock:
            if len(self.codes) >= MAX_GRANTS:
                self.codes.pop(next(iter(self.codes)))
            self.codes[code] = {"redirect_uri": redirect_uri, "scope": scope,
                                "challenge": challenge, "method": method, "used": False,
                                "expires": time.time() + self.settings["code_ttl"],
                                "refresh_tokens": []}
            self.stats["codes_issued"] += 1
        return back(code=code)

    @staticmethod
    def _page(status: int, text: str) -> Response:
        body = (f"<!DOCTYPE html><html><head><title>Sign in</title></head><body>"
                f"<h1>Sorry, but we're having trouble signing you in.</h1>"
                f"<p>{html.escape(text)}</p></body></html>")
        return Response(status, body.encode(), "text/html; charset=utf-8")

    # -- token endpoint (RFC 6749 4.1.3, 5, 6) ---------------------------

    def token(self, req: Request, form: dict[str, str]) -> Response:
        """grant_type authorization_code or refresh_token; the caller has
        checked the method, content type and that grant_type is one of them."""
        if form.get("client_id") != self.client_id or \
                form.get("client_secret") != self.client_secret:
            return self.error(req, 401, "invalid_client", "Client authentication failed.")
        if form["grant_type"] == "authorization_code":
            return self._redeem(req, form)
        return self._refresh(req, form)

    def _invalid_grant(self, req: Request, why: str) -> Response:
        self.stats["invalid_grant"] += 1
        return self.error(req, 400, "invalid_grant", why)

    def _redeem(self, req: Request, form: dict[str, str]) -> Response:
        code = form.get("code", "")
        with self.lock:
            grant = self.codes.get(code)
            if grant is None:
                return self._invalid_grant(req, "The provided authorization code is invalid.")
            if grant["used"]:
                # RFC 6749 4.1.2: a code used twice revokes what it gave
                for rt in grant["refresh_tokens"]:
                    self.refresh.pop(rt, None)
                return self._invalid_grant(req, "The provided authorization code was already "
                                                "redeemed.")
            grant["used"] = True
            if time.time() >= grant["expires"]:
                return self._invalid_grant(req, "The provided authorization code is expired.")
            if form.get("redirect_uri") != grant["redirect_uri"]:
                return self._invalid_grant(req, "The redirect_uri does not match the one of "
                                                "the authorization request.")
            verifier = form.get("code_verifier", "")
            if not 43 <= len(verifier) <= 128 or not set(verifier) <= _UNRESERVED:
                return self._invalid_grant(req, "The code_verifier is missing or malformed.")
            expect = s256(verifier) if grant["method"] == "S256" else verifier
            if not secrets.compare_digest(expect, grant["challenge"]):
                return self._invalid_grant(req, "The code_verifier does not match the "
                                                "code_challenge.")
            self.stats["codes_redeemed"] += 1
            refresh = None
            if self.refresh_needs_scope is None or \
                    self.refresh_needs_scope in grant["scope"].split():
                refresh = self._new_refresh(grant["scope"], time.time())
                grant["refresh_tokens"].append(refresh)
        return self._tokens(req, grant["scope"], refresh)

    def _new_refresh(self, scope: str, authorized_at: float) -> str:
        token = secrets.token_urlsafe(48)
        if len(self.refresh) >= MAX_GRANTS:
            self.refresh.pop(next(iter(self.refresh)))
        self.refresh[token] = {"scope": scope, "revoked": None,
                               "expires": time.time() + self.settings["refresh_ttl"],
                               "authorized_at": authorized_at}
        return token

    def _refresh(self, req: Request, form: dict[str, str]) -> Response:
        token = form.get("refresh_token", "")
        with self.lock:
            info = self.refresh.get(token)
            if info is None:
                return self._invalid_grant(req, "The refresh token is invalid.")
            if info["revoked"]:
                return self._invalid_grant(req, info["revoked"])
            if time.time() >= info["expires"]:
                return self._invalid_grant(req, "The refresh token has expired due to "
                                                "inactivity or its maximum lifetime.")
            self.stats["refreshes"] += 1
            rotation = self.settings["rotation"]
            new = None
            if rotation != "none":
                new = self._new_refresh(info["scope"], info["authorized_at"])
                self.stats["rotations"] += 1
                if rotation == "strict":
                    info["revoked"] = "The refresh token was already used to obtain a new one."
        return self._tokens(req, info["scope"], new)

    def _tokens(self, req: Request, scope: str, refresh: Optional[str]) -> Response:
        ttl = int(self.settings["access_ttl"])
        body = {"token_type": "Bearer", "scope": scope, "expires_in": ttl,
                "access_token": self.issue_access_token(req, self.client_id, scope, ttl)}
        if refresh:
            body["refresh_token"] = refresh
        return Response.json(body, 200, "application/json; charset=utf-8",
                             [("Cache-Control", "no-store"), ("Pragma", "no-cache")])

    # -- control ---------------------------------------------------------

    def control(self, req: Request, name: str,
                revoke_access_tokens: Callable[[], int]) -> Optional[Response]:
        if name == "oauth/info" and req.method == "GET":
            with self.lock:
                now = time.time()
                live = sum(1 for i in self.refresh.values()
                           if not i["revoked"] and i["expires"] > now)
                return Response.json({"settings": self.settings, "stats": dict(self.stats),
                                      "live_refresh_tokens": live})
        if req.method != "POST":
            return None
        if name == "oauth/config":
            changes = req.json() if req.body else {}
            if not isinstance(changes, dict) or not set(changes) <= set(self.defaults) or \
                    changes.get("rotation", "none") not in ("none", "replace", "strict") or \
                    changes.get("consent", "grant") not in ("grant", "deny"):
                return Response.json({"error": f"bad oauth config {changes!r}"}, 400)
            with self.lock:
                self.settings.update(changes)
                return Response.json(dict(self.settings))
        if name in ("oauth/revoke", "oauth/expire"):
            with self.lock:
                n = 0
                for info in self.refresh.values():
                    if name == "oauth/revoke":
                        info["revoked"] = info["revoked"] or \
                            "The user or administrator has revoked the consent."
                    else:
                        info["expires"] = 0
                    n += 1
            revoked = revoke_access_tokens() if name == "oauth/revoke" else 0
            return Response.json({"ok": True, "refresh_tokens": n,
                                  "access_tokens": revoked})
        return None
