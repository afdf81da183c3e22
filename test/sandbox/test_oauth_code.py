"""Self-tests of the authorization code grant (oauth_code.py) as the
Business Central sandbox serves it: consent given or refused, PKCE checked,
codes single-use and short-lived, refresh tokens that rotate, expire and
are revoked, and a redirect URI that was not registered."""

from __future__ import annotations

import base64
import http.client
import json
import os
import secrets
import sys
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bc  # noqa: E402
import common  # noqa: E402
import netsuite  # noqa: E402
from oauth_code import s256  # noqa: E402

TENANT = "7a3b1c2d-0000-4a5b-9c8d-112233445566"
SCOPE = bc.BC_RESOURCE + "/Financials.ReadWrite.All offline_access"
API = f"/v2.0/{TENANT}/production/api/v2.0/companies"


class ServerCase(unittest.TestCase):
    """A sandbox of its own (``make_app``), reset before each test."""

    @classmethod
    def setUpClass(cls) -> None:
        cls.server = common.SandboxServer(cls.make_app()).start()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.server.stop()

    def setUp(self) -> None:
        self.assertEqual(self.request("POST", "/_sandbox/reset")[0], 200)

    def request(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, r.headers, r.read()
        finally:
            conn.close()


class AuthorizationCodeCase(ServerCase):

    @staticmethod
    def make_app():
        return bc.BcApp(seed=42, orders=5)

    def control(self, name, obj=None):
        status, _h, raw = self.request("POST", "/_sandbox/oauth/" + name,
                                       json.dumps(obj or {}), {"Content-Type": "application/json"})
        self.assertEqual(status, 200, raw)

    def authorize(self, verifier, redirect=bc.APP_REDIRECT_URI, **extra):
        params = {"client_id": bc.APP_CLIENT_ID, "response_type": "code",
                  "redirect_uri": redirect, "scope": SCOPE, "state": "st-1",
                  "code_challenge": s256(verifier), "code_challenge_method": "S256"}
        params.update(extra)
        params = {k: v for k, v in params.items() if v is not None}
        status, headers, body = self.request(
            "GET", f"/{TENANT}/oauth2/v2.0/authorize?" + urllib.parse.urlencode(params))
        if status != 302:
            return status, body.decode()
        loc = headers["Location"]
        self.assertTrue(loc.startswith(redirect + "?"), loc)
        return status, dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(loc).query))

    def token(self, **form):
        base = {"client_id": bc.APP_CLIENT_ID, "client_secret": bc.APP_CLIENT_SECRET}
        base.update(form)
        status, _h, raw = self.request("POST", f"/{TENANT}/oauth2/v2.0/token",
                                       urllib.parse.urlencode(base),
                                       {"Content-Type": "application/x-www-form-urlencoded"})
        return status, json.loads(raw)

    def redeem(self, code, verifier, redirect=bc.APP_REDIRECT_URI):
        return self.token(grant_type="authorization_code", code=code, code_verifier=verifier,
                          redirect_uri=redirect)

    def api_status(self, access_token):
        return self.request("GET", API, headers={"Authorization": "Bearer " + access_token})[0]

    def test_full_flow_and_rotation(self):
        verifier = secrets.token_urlsafe(48)
        status, answer = self.authorize(verifier)
        self.assertEqual(answer["state"], "st-1")
        status, tok = self.redeem(answer["code"], verifier)
        self.assertEqual(status, 200, tok)
        self.assertEqual(self.api_status(tok["access_token"]), 200)
        # Entra: the refresh token replaces itself; the old one stays valid
        status, tok2 = self.token(grant_type="refresh_token", refresh_token=tok["refresh_token"])
        self.assertEqual(status, 200, tok2)
        self.assertNotEqual(tok2["refresh_token"], tok["refresh_token"])
        self.assertEqual(self.token(grant_type="refresh_token",
                                    refresh_token=tok["refresh_token"])[0], 200)
        # strict rotation: a used refresh token is refused
        self.control("config", {"rotation": "strict"})
        status, tok3 = self.token(grant_type="refresh_token", refresh_token=tok2["refresh_token"])
        self.assertEqual(status, 200)
        status, err = self.token(grant_type="refresh_token", refresh_token=tok2["refresh_token"])
        self.assertEqual((status, err["error"]), (400, "invalid_grant"))
        self.assertEqual(self.token(grant_type="refresh_token",
                                    refresh_token=tok3["refresh_token"])[0], 200)

    def test_code_single_use_pkce_redirect(self):
        verifier = secrets.token_urlsafe(48)
        _s, answer = self.authorize(verifier)
        status, err = self.redeem(answer["code"], secrets.token_urlsafe(48))
        self.assertEqual((status, err["error"]), (400, "invalid_grant"))
        self.assertIn("AADSTS70000", err["error_description"])
        # the failed attempt used the code up
        self.assertEqual(self.redeem(answer["code"], verifier)[1]["error"], "invalid_grant")
        _s, answer = self.authorize(verifier)
        self.assertEqual(self.redeem(answer["code"], verifier,
                                     "http://127.0.0.1/other")[1]["error"], "invalid_grant")
        _s, answer = self.authorize(verifier)
        self.assertEqual(self.redeem(answer["code"], verifier)[0], 200)
        self.assertEqual(self.redeem(answer["code"], verifier)[0], 400)
        # short-lived codes
        self.control("config", {"code_ttl": 0})
        _s, answer = self.authorize(verifier)
        self.assertIn("expired", self.redeem(answer["code"], verifier)[1]["error_description"])
        # no PKCE, an unregistered redirect URI, a wrong client secret
        self.assertEqual(self.authorize(verifier, code_challenge=None)[1]["error"],
                         "invalid_request")
        status, page = self.authorize(verifier, redirect="http://127.0.0.1/evil")
        self.assertEqual(status, 400)
        self.assertIn("redirect URI", page)
        status, err = self.token(grant_type="refresh_token", refresh_token="x",
                                 client_secret="wrong")
        self.assertEqual((status, err["error"]), (401, "invalid_client"))

    def test_consent_refused(self):
        self.control("config", {"consent": "deny"})
        status, answer = self.authorize(secrets.token_urlsafe(48))
        self.assertEqual(status, 302)
        self.assertEqual((answer["error"], answer["state"]), ("access_denied", "st-1"))
        self.assertNotIn("code", answer)

    def test_no_refresh_token_without_offline_access(self):
        verifier = secrets.token_urlsafe(48)
        _s, answer = self.authorize(verifier, scope=bc.BC_RESOURCE + "/Financials.ReadWrite.All")
        status, tok = self.redeem(answer["code"], verifier)
        self.assertEqual(status, 200)
        self.assertNotIn("refresh_token", tok)

    def test_revoke_and_expire(self):
        verifier = secrets.token_urlsafe(48)
        _s, answer = self.authorize(verifier)
        _s, tok = self.redeem(answer["code"], verifier)
        self.control("revoke")
        status, err = self.token(grant_type="refresh_token", refresh_token=tok["refresh_token"])
        self.assertEqual((status, err["error"]), (400, "invalid_grant"))
        self.assertIn("revoked", err["error_description"])
        self.assertEqual(self.api_status(tok["access_token"]), 401)
        _s, answer = self.authorize(verifier)
        _s, tok = self.redeem(answer["code"], verifier)
        self.control("expire")
        self.assertIn("expired", self.token(grant_type="refresh_token",
                                            refresh_token=tok["refresh_token"])[1]
                      ["error_description"])


if __name__ == "__main__":
    unittest.main()


class NetSuiteAuthorizationCodeCase(ServerCase):
    """NetSuite: HTTP Basic client authentication, refresh tokens not
    replaced, access tokens accepted by SuiteQL."""

    ns = netsuite

    @staticmethod
    def make_app():
        return netsuite.NetSuiteApp(seed=42, orders=5)

    def token(self, basic=True, **form):
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if basic:
            cred = f"{self.ns.OAUTH2_CLIENT_ID}:{self.ns.OAUTH2_CLIENT_SECRET}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(cred).decode()
        status, _h, raw = self.request("POST", self.ns.OAUTH2_TOKEN_PATH,
                                       urllib.parse.urlencode(form), headers)
        return status, json.loads(raw)

    def test_flow(self):
        verifier = secrets.token_urlsafe(48)
        q = urllib.parse.urlencode({
            "client_id": self.ns.OAUTH2_CLIENT_ID, "response_type": "code",
            "redirect_uri": self.ns.OAUTH2_REDIRECT_URI, "scope": "rest_webservices",
            "state": "s" * 24, "code_challenge": s256(verifier), "code_challenge_method": "S256"})
        status, headers, _b = self.request("GET", self.ns.OAUTH2_AUTHORIZE_PATH + "?" + q)
        self.assertEqual(status, 302)
        answer = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(headers["Location"]).query))
        form = {"grant_type": "authorization_code", "code": answer["code"],
                "redirect_uri": self.ns.OAUTH2_REDIRECT_URI, "code_verifier": verifier}
        # the client must authenticate with HTTP Basic
        self.assertEqual(self.token(basic=False, **form)[0], 401)
        status, tok = self.token(**form)
        self.assertEqual(status, 200, tok)
        status, tok2 = self.token(grant_type="refresh_token", refresh_token=tok["refresh_token"])
        self.assertEqual(status, 200)
        self.assertNotIn("refresh_token", tok2)     # not replaced
        status, _h, raw = self.request(
            "POST", self.ns.SUITEQL_PATH + "?limit=1",
            json.dumps({"q": "SELECT id FROM vendor"}),
            {"Authorization": "Bearer " + tok2["access_token"], "Prefer": "transient",
             "Content-Type": "application/json"})
        self.assertEqual(status, 200, raw)
