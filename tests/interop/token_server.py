#!/usr/bin/env python3
"""A minimal token server for the distribution registry's bearer-token auth (tests only).

Usage: token_server.py PORT KEY.pem CERT.pem USER PASSWORD [--expire-first]

GET /token?service=S&scope=repository:NAME:pull,push[&scope=...], optionally with Basic
credentials: anonymous callers get `pull` only; USER:PASSWORD gets every action asked for;
wrong credentials get 401. Tokens are RS256 JWTs signed with KEY (openssl CLI), carrying CERT
in `x5c`, which the registry trusts through its `rootcertbundle`. With --expire-first, the
first token issued is already expired (as if it ran out in the middle of a transfer), so the
client must re-authenticate on the 401 that follows. Every issued token is logged on stdout.
"""
import base64
import json
import os
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

port, key, cert, user, password = sys.argv[1:6]
expire_first = "--expire-first" in sys.argv[6:]
issued = 0


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


der = subprocess.run(["openssl", "x509", "-in", cert, "-outform", "DER"], capture_output=True, check=True).stdout
header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}


def sign(claims):
    signing_input = b64u(json.dumps(header).encode()) + "." + b64u(json.dumps(claims).encode())
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=signing_input.encode(),
                         capture_output=True, check=True).stdout
    return signing_input + "." + b64u(sig)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        global issued
        q = parse_qs(urlparse(self.path).query)
        authed = False
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            u, _, p = base64.b64decode(auth[6:]).decode().partition(":")
            if (u, p) != (user, password):
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"errors":[{"code":"UNAUTHORIZED","message":"invalid username or password"}]}')
                return
            authed = True
        access = []
        for scope in q.get("scope", []):
            for one in scope.split(" "):
                typ, _, rest = one.partition(":")
                name, _, actions = rest.rpartition(":")
                acts = [a for a in actions.split(",") if authed or a == "pull"]
                access.append({"type": typ, "name": name, "actions": acts})
        now = int(time.time())
        issued += 1
        # The registry allows 60 s of clock skew: expire well before that.
        exp = now - 600 if expire_first and issued == 1 else now + 3600
        claims = {"iss": "snap-test-issuer", "sub": user if authed else "", "aud": q.get("service", [""])[0],
                  "exp": exp, "nbf": now - 10, "iat": now - 10, "jti": os.urandom(8).hex(), "access": access}
        body = json.dumps({"token": sign(claims), "expires_in": 3600}).encode()
        print(f"token {issued} authed={authed} exp={exp - now}", flush=True)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


ThreadingHTTPServer(("127.0.0.1", int(port)), Handler).serve_forever()
