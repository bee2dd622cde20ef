#!/usr/bin/env python3
"""A registry that lies, stalls or floods (tests only; a real registry cannot be made to).

Usage: hostile_registry.py PORT LAYOUT FAULT LOG [STORAGE_PORT]

Serves the OCI layout directory LAYOUT (as `snap export --oci … -o LAYOUT` writes it) read-only
under any repository name: `/v2/` answers 200, manifests by the tag in `index.json`'s
`org.opencontainers.image.ref.name` or by digest, blobs by digest, and uploads (`POST` then
`PUT`, accepted and thrown away). FAULT spoils one part of that:

  none                   nothing (a sanity check of the server itself)
  huge-manifest          a manifest GET announces 2 GiB (Content-Length) and streams zeros
  huge-manifest-unsized  a manifest GET streams zeros without a length until the client leaves
  drip                   a manifest GET sends its body one byte a second
  stall-blob             a blob GET sends half its body, then nothing (the connection stays open)
  endless-chunked        a blob GET sends its bytes, then endless chunks (Transfer-Encoding: chunked)
  lying-length           a blob GET announces its size, sends half, and closes the connection
  redirect-loop          a blob GET redirects to another URL that redirects back
  redirect-chain         a blob GET redirects to a new URL each time, forever
  cross-host             every request needs Basic credentials (any); a blob GET redirects to
                         127.0.0.2:STORAGE_PORT, "object storage", which serves it to anyone
  429                    the first two manifest or blob requests answer 429, with Retry-After
                         `1` and then an HTTP-date one second ahead
  429-long               every manifest or blob request answers 429 with Retry-After: 3600
  huge-token             `/v2/` asks for a bearer token from this server's `/token`, which
                         streams an endless token (chunked) until the client leaves
  stall-push             an upload's PUT reads its body and never answers
  refuse-resume          the upload session `stale` (which the test writes into upload records)
                         answers a GET 204 with `Range: 0-9`, then refuses its PATCH with 416;
                         other sessions take PATCHes (202, `Range`) and the closing PUT
  tags-endless           the tag list's every page links to a next one, forever
  tags-huge              the tag list announces 2 GiB and streams zeros
  tags-elsewhere         the tag list's first page links its next one on 127.0.0.2
  referrers-api          a registry with the referrers API (distribution-spec 1.1):
                         `GET /v2/<name>/referrers/<digest>` answers the index the layout
                         tags `sha256-<hex>` (an empty index when there is none), those tags
                         themselves are unknown, and a manifest PUT answers 201 with
                         `OCI-Subject` (the body thrown away)

The tag list (`GET /v2/<name>/tags/list`) names the layout's tags, sorted, one per page
whatever `n` asks (registries may send fewer), each page linking the next with
`Link: </v2/<name>/tags/list?n=…&last=…>; rel="next"` while there are more.

Every request is logged to LOG as one JSON line: {"server", "method", "path",
"authorization"} ("authorization" is whether the header came, never its value).
"""
import hashlib
import json
import os
import sys
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, layout, fault, log_path = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
storage_port = int(sys.argv[5]) if len(sys.argv) > 5 else 0
log_lock = threading.Lock()
counted = {"429": 0}
REF_NAME = "org.opencontainers.image.ref.name"
PIECE = b"\0" * 65536
# No stall or stream lasts longer than this, whatever the client does (the test's own bound).
LONGEST = 60.0

with open(os.path.join(layout, "index.json"), "rb") as f:
    index = json.load(f)
tags = {m.get("annotations", {}).get(REF_NAME): m for m in index["manifests"]}


def blob(digest):
    alg, _, hexd = digest.partition(":")
    if alg != "sha256" or len(hexd) != 64 or not all(c in "0123456789abcdef" for c in hexd):
        return None
    try:
        with open(os.path.join(layout, "blobs", "sha256", hexd), "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def manifest_type(body):
    return json.loads(body).get("mediaType", "application/vnd.oci.image.manifest.v1+json")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_name = "registry"

    def log_message(self, *args):
        pass

    def record(self):
        line = {"server": self.server_name, "method": self.command, "path": self.path,
                "authorization": "Authorization" in self.headers}
        with log_lock, open(log_path, "a") as f:
            f.write(json.dumps(line) + "\n")

    def send(self, status, body=b"", ctype="application/json", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Docker-Distribution-Api-Version", "registry/2.0")
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def error(self, status, code, message, headers=()):
        body = json.dumps({"errors": [{"code": code, "message": message, "detail": None}]}).encode()
        self.send(status, body, headers=headers)

    def stream_forever(self, chunked):
        """Zeros until the client leaves (or LONGEST)."""
        end = time.monotonic() + LONGEST
        try:
            while time.monotonic() < end:
                if chunked:
                    self.wfile.write(b"%x\r\n" % len(PIECE) + PIECE + b"\r\n")
                else:
                    self.wfile.write(PIECE)
        except OSError:
            pass
        self.close_connection = True

    def stall(self):
        end = time.monotonic() + LONGEST
        try:
            while time.monotonic() < end:
                time.sleep(0.2)
                self.wfile.flush()
        except OSError:
            pass
        self.close_connection = True

    def answer(self):
        self.record()
        length = int(self.headers.get("Content-Length") or 0)
        path, _, query = self.path.partition("?")
        if fault == "stall-push" and self.command == "PUT" and "/blobs/uploads/" in path:
            self.rfile.read(length)
            return self.stall()
        body_in = self.rfile.read(length) if length else b""
        if fault == "referrers-api":
            answered = self.referrers_api(path, body_in)
            if answered:
                return
        if fault == "cross-host" and "Authorization" not in self.headers:
            return self.error(401, "UNAUTHORIZED", "authentication required",
                              [("WWW-Authenticate", 'Basic realm="hostile"')])
        if path == "/token":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            start = b'{"token":"'
            self.wfile.write(b"%x\r\n" % len(start) + start + b"\r\n")
            return self.stream_forever(chunked=True)
        if path.rstrip("/") == "/v2":
            if fault == "huge-token" and "Authorization" not in self.headers:
                realm = f"http://127.0.0.1:{port}/token"
                return self.error(401, "UNAUTHORIZED", "authentication required",
                                  [("WWW-Authenticate", f'Bearer realm="{realm}",service="hostile"')])
            return self.send(200, b"{}")
        parts = path.split("/")
        if len(parts) < 5 or parts[1] != "v2":
            return self.error(404, "NAME_UNKNOWN", "no such repository")
        kind, ref = parts[-2], parts[-1]
        if kind == "uploads" or (parts[-3:-1] == ["blobs", "uploads"]):
            if fault == "refuse-resume" and "/uploads/stale" in path:
                if self.command == "GET":
                    return self.send(204, headers=[("Range", "0-9"), ("Location", self.path)])
                if self.command == "PATCH":
                    return self.error(416, "RANGE_INVALID", "invalid content range")
            if fault == "refuse-resume" and self.command == "PATCH":
                end = self.headers.get("Content-Range", "0-0").partition("-")[2]
                return self.send(202, headers=[("Location", self.path), ("Range", f"0-{end}")])
            if self.command == "POST":
                return self.send(202, headers=[("Location", f"/v2/x/blobs/uploads/1?_state=s")])
            return self.send(201, headers=[("Docker-Content-Digest", query.partition("digest=")[2])])
        if parts[-2:] == ["tags", "list"] and self.command == "GET":
            return self.tag_page(path, query)
        if kind not in ("manifests", "blobs"):
            return self.error(404, "NAME_UNKNOWN", "no such repository")
        if fault == "429-long":
            return self.error(429, "TOOMANYREQUESTS", "slow down", [("Retry-After", "3600")])
        if fault == "429" and counted["429"] < 2:
            counted["429"] += 1
            after = "1" if counted["429"] == 1 else formatdate(time.time() + 1, usegmt=True)
            return self.error(429, "TOOMANYREQUESTS", "slow down", [("Retry-After", after)])
        if kind == "manifests":
            desc = tags.get(ref)
            digest = desc["digest"] if desc else ref
            body = blob(digest)
            if body is None:
                return self.error(404, "MANIFEST_UNKNOWN", "manifest unknown")
            headers = [("Docker-Content-Digest", digest)]
            if self.command == "GET" and fault == "huge-manifest":
                self.send_response(200)
                self.send_header("Content-Type", manifest_type(body))
                self.send_header("Content-Length", str(2 << 30))
                self.end_headers()
                return self.stream_forever(chunked=False)
            if self.command == "GET" and fault == "huge-manifest-unsized":
                self.send_response(200)
                self.send_header("Content-Type", manifest_type(body))
                self.send_header("Connection", "close")
                self.end_headers()
                return self.stream_forever(chunked=False)
            if self.command == "GET" and fault == "drip":
                self.send_response(200)
                self.send_header("Content-Type", manifest_type(body))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    for b in body[: int(LONGEST)]:
                        self.wfile.write(bytes([b]))
                        self.wfile.flush()
                        time.sleep(1)
                except OSError:
                    pass
                self.close_connection = True
                return
            return self.send(200, body, manifest_type(body), headers)
        body = blob(ref)
        if body is None:
            return self.error(404, "BLOB_UNKNOWN", "blob unknown")
        if self.command == "GET" and fault in ("redirect-loop", "redirect-chain"):
            hop = int(query.partition("hop=")[2] or 0)
            nxt = (hop + 1) % 2 if fault == "redirect-loop" else hop + 1
            return self.send(307, headers=[("Location", f"{path}?hop={nxt}")])
        if self.command == "GET" and fault == "cross-host":
            where = f"http://127.0.0.2:{storage_port}/storage/{ref}"
            return self.send(307, headers=[("Location", where)])
        if self.command == "GET" and fault in ("stall-blob", "lying-length"):
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            if fault == "stall-blob":
                return self.stall()
            self.close_connection = True
            return
        if self.command == "GET" and fault == "endless-chunked":
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                self.wfile.write(b"%x\r\n" % len(body) + body + b"\r\n")
            except OSError:
                return
            return self.stream_forever(chunked=True)
        return self.send(200, body, "application/octet-stream", [("Docker-Content-Digest", ref)])

    def referrers_api(self, path, body_in):
        """The `referrers-api` fault's endpoints; False for any other request."""
        parts = path.split("/")
        if len(parts) >= 5 and parts[-2] == "referrers" and self.command == "GET":
            desc = tags.get("sha256-" + parts[-1].partition(":")[2])
            body = blob(desc["digest"]) if desc else None
            if body is None:
                body = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                                   "manifests": []}).encode()
            self.send(200, body, "application/vnd.oci.image.index.v1+json")
            return True
        if len(parts) >= 5 and parts[-2] == "manifests" and parts[-1].startswith("sha256-") \
                and not parts[-1].endswith(".snap"):
            self.error(404, "MANIFEST_UNKNOWN", "manifest unknown")
            return True
        if len(parts) >= 5 and parts[-2] == "manifests" and self.command == "PUT":
            digest = "sha256:" + hashlib.sha256(body_in).hexdigest()
            headers = [("Docker-Content-Digest", digest)]
            if b'"subject"' in body_in:
                headers.append(("OCI-Subject", json.loads(body_in)["subject"]["digest"]))
            self.send(201, b"", "text/plain", headers)
            return True
        return False

    def tag_page(self, path, query):
        args = dict(p.partition("=")[::2] for p in query.split("&") if p)
        last = args.get("last", "")
        n = args.get("n", "1000")
        if fault == "tags-huge":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(2 << 30))
            self.end_headers()
            return self.stream_forever(chunked=False)
        if fault == "tags-endless":
            page = [f"t{int(last[1:] or 0) + 1}" if last else "t1"]
            more = True
        else:
            names = sorted(t for t in tags if t)
            rest = [t for t in names if t > last]
            page, more = rest[:1], len(rest) > 1
        headers = []
        if more:
            base = f"http://127.0.0.2:{port}" if fault == "tags-elsewhere" else ""
            headers.append(("Link", f'<{base}{path}?n={n}&last={page[-1]}>; rel="next"'))
        name = "/".join(path.split("/")[2:-2])
        return self.send(200, json.dumps({"name": name, "tags": page}).encode(), headers=headers)

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = answer


class Storage(Handler):
    """Object storage a blob is redirected to: serves blobs to anyone."""
    server_name = "storage"

    def answer(self):
        self.record()
        body = blob(self.path.rpartition("/")[2])
        if body is None:
            return self.send(404, b"no such object", "text/plain")
        self.send(200, body, "application/octet-stream")

    do_GET = do_HEAD = answer


ThreadingHTTPServer.daemon_threads = True
if storage_port:
    storage = ThreadingHTTPServer(("127.0.0.2", storage_port), Storage)
    threading.Thread(target=storage.serve_forever, daemon=True).start()
ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
