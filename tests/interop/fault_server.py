#!/usr/bin/env python3
"""Answers every registry request with one fault a real registry would not produce on demand
(tests only). Usage: fault_server.py PORT STATUS [CODE MESSAGE]

/v2/ answers 200 (no auth), so clients get past login; everything else gets STATUS with a
distribution error envelope {"errors":[{"code":CODE,"message":MESSAGE}]} (or a plain-text
body when CODE is omitted).
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, status = int(sys.argv[1]), int(sys.argv[2])
code, message = (sys.argv[3], sys.argv[4]) if len(sys.argv) > 4 else (None, None)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.path.rstrip("/") == "/v2":
            body, st, ctype = b"{}", 200, "application/json"
        elif code:
            body = json.dumps({"errors": [{"code": code, "message": message, "detail": None}]}).encode()
            st, ctype = status, "application/json"
        else:
            body, st, ctype = b"upstream connect error", status, "text/plain"
        self.send_response(st)
        self.send_header("Content-Type", ctype)
        self.send_header("Docker-Distribution-Api-Version", "registry/2.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = answer


ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
