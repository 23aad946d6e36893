"""A local stand-in for the Hugging Face Hub's HTTP API: just the calls that creating a repo,
committing files and downloading them make. Files are kept in memory."""
from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeHub:
    def __init__(self):
        self.repos: dict[str, dict[str, bytes]] = {}
        self.requests: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def _handler(hub):
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, status, body=b"", headers=None):
                data = json.dumps(body).encode() if not isinstance(body, bytes) else body
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _body(self):
                return self.rfile.read(int(self.headers.get("Content-Length", 0)))

            def do_POST(self):
                hub.requests.append(f"POST {self.path}")
                body = self._body()
                parts = self.path.split("?")[0].strip("/").split("/")
                if self.path.startswith("/api/repos/create"):
                    info = json.loads(body)
                    repo = f"{info.get('organization') or info.get('namespace') or 'user'}/{info['name']}" \
                        if "/" not in info["name"] else info["name"]
                    hub.repos.setdefault(repo, {})
                    return self._reply(200, {"url": f"{hub.url}/{repo}", "name": repo, "id": repo})
                if self.path.startswith("/api/validate-yaml"):  # the model card's metadata
                    return self._reply(200, {"errors": [], "warnings": []})
                if parts[0] == "api" and parts[1] == "models" and parts[4] == "preupload":
                    files = json.loads(body)["files"]
                    return self._reply(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                                                        "oid": None} for f in files], "commitOid": "0" * 40})
                if parts[0] == "api" and parts[1] == "models" and parts[4] == "commit":
                    repo = f"{parts[2]}/{parts[3]}"
                    for line in body.decode().splitlines():
                        item = json.loads(line)
                        if item.get("key") == "file":
                            value = item["value"]
                            hub.repos.setdefault(repo, {})[value["path"]] = base64.b64decode(value["content"])
                    oid = hashlib.sha1(repr(sorted(hub.repos[repo])).encode()).hexdigest()
                    return self._reply(200, {"commitUrl": f"{hub.url}/{repo}/commit/{oid}", "commitOid": oid,
                                             "success": True})
                return self._reply(404, {"error": f"not faked: POST {self.path}"})

            def do_GET(self):
                hub.requests.append(f"{self.command} {self.path}")
                parts = self.path.split("?")[0].strip("/").split("/")
                # /{user}/{repo}/resolve/{revision}/{file}
                if len(parts) >= 5 and parts[2] == "resolve":
                    repo, name = f"{parts[0]}/{parts[1]}", "/".join(parts[4:])
                    files = hub.repos.get(repo)
                    if files is None:
                        return self._reply(401, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
                    if name not in files:
                        return self._reply(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
                    data = files[name]
                    etag = hashlib.sha1(data).hexdigest()
                    return self._reply(200, data, {"ETag": f'"{etag}"', "X-Repo-Commit": "1" * 40,
                                                   "Content-Type": "application/octet-stream"})
                return self._reply(404, {"error": f"not faked: GET {self.path}"})

            do_HEAD = do_GET

        return Handler
