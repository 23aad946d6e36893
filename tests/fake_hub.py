"""A local stand-in for the Hugging Face Hub's HTTP API: just the calls that creating a repo,
committing files (with the Hub's no-op detection), listing them, downloading them, Space
variables and whoami make. Files are kept in memory.

FakeHub() accepts any token and lets it write anywhere. FakeHub(tokens={"hf_x": "alice"})
acts as the real Hub does for accounts: an unknown token gets 401, and a user may create and
write repos only in their own namespace (403 elsewhere).

hub_environment points huggingface_hub in this process at it (or anywhere else) for a block."""
from __future__ import annotations

import base64
import contextlib
import hashlib
import importlib
import json
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API_REPO = re.compile(r"^/api/(models|spaces)/([^/]+/[^/]+)/(preupload|commit|revision|tree|variables)(?:/([^?]*))?")
RESOLVE = re.compile(r"^/(?:(spaces)/)?([^/]+/[^/]+)/resolve/[^/]+/(.+)$")


@contextlib.contextmanager
def hub_environment(**variables: str | None):
    """Run a block with these environment variables (None: unset) and huggingface_hub's constants
    read again from them: it reads HF_ENDPOINT, HF_HOME and HF_HUB_OFFLINE once, at import, so
    without this each case would be a Python process of its own (4 s of CPU to import torch and the
    project again). The variables and constants are as they were after the block."""
    from huggingface_hub import constants

    def apply(values: dict[str, str | None]) -> None:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        importlib.reload(constants)

    saved = {name: os.environ.get(name) for name in variables}
    apply(variables)
    try:
        yield
    finally:
        apply(saved)


def git_blob_oid(data: bytes) -> str:
    """The id git (and the Hub, for regular files) gives a file's content."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FakeHub:
    def __init__(self, tokens: dict[str, str] | None = None):
        self.tokens = tokens
        self.repos: dict[str, dict[str, bytes]] = {}  # model repos: id -> {path: content}
        self.spaces: dict[str, dict[str, bytes]] = {}  # Space repos, likewise
        self.owners: dict[tuple[str, str], str] = {}  # (kind, id) -> the user who created it
        self.commits: dict[tuple[str, str], list[str]] = {}  # (kind, id) -> commit ids, oldest first
        self.variables: dict[str, dict[str, str]] = {}  # Space id -> its variables
        self.space_settings: dict[str, dict] = {}  # Space id -> what it was created with (sdk, private)
        self.requests: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        # polled every 50 ms (the default 0.5 s is how long each shutdown waited)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def files(self, kind: str) -> dict[str, dict[str, bytes]]:
        return self.spaces if kind == "spaces" else self.repos

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

            def _user(self):
                """The token's user; False (after a 401 reply) for a token the Hub does not know."""
                if hub.tokens is None:
                    return None
                token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                if token not in hub.tokens:
                    self._reply(401, {"error": "Invalid credentials in Authorization header"})
                    return False
                return hub.tokens[token]

            def _may_write(self, user, kind, repo) -> bool:
                owner = hub.owners.get((kind, repo), repo.split("/")[0])
                if user is not None and owner != user:
                    self._reply(403, {"error": f"You don't have the rights to write to {repo}"})
                    return False
                return True

            def do_POST(self):
                hub.requests.append(f"POST {self.path}")
                body = self._body()
                if self.path.startswith("/api/validate-yaml"):  # the model card's metadata
                    return self._reply(200, {"errors": [], "warnings": []})
                user = self._user()
                if user is False:
                    return
                if self.path.startswith("/api/repos/create"):
                    return self._create(user, json.loads(body))
                match = API_REPO.match(self.path)
                if not match:
                    return self._reply(404, {"error": f"not faked: POST {self.path}"})
                kind, repo, action, _ = match.groups()
                files = hub.files(kind).get(repo)
                if files is None:
                    return self._reply(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
                if not self._may_write(user, kind, repo):
                    return
                if action == "preupload":  # the oid of what is there already lets the client skip unchanged files
                    return self._reply(200, {"files": [
                        {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                         "oid": git_blob_oid(files[f["path"]]) if f["path"] in files else None}
                        for f in json.loads(body)["files"]], "commitOid": self._head(kind, repo)})
                if action == "commit":
                    return self._commit(kind, repo, files, body)
                if action == "variables" and kind == "spaces":
                    item = json.loads(body)
                    hub.variables.setdefault(repo, {})[item["key"]] = item["value"]
                    return self._reply(200, self._variables(repo))
                return self._reply(404, {"error": f"not faked: POST {self.path}"})

            def _create(self, user, info):
                name = info["name"] if "/" in info["name"] else f"{info.get('organization') or user or 'user'}/{info['name']}"
                kind = f"{info.get('type', 'model')}s"
                if user is not None and name.split("/")[0] != user:
                    return self._reply(403, {"error": f"You don't have the rights to create a {kind[:-1]} under "
                                                      f"the namespace \"{name.split('/')[0]}\""})
                if name in hub.files(kind):
                    return self._reply(409, {"error": "You already created this repo", "url": f"{hub.url}/{name}"})
                hub.files(kind)[name] = {}
                hub.owners[(kind, name)] = user or name.split("/")[0]
                hub.commits[(kind, name)] = []
                if kind == "spaces":
                    hub.space_settings[name] = {"sdk": info.get("sdk"), "private": info.get("private")}
                return self._reply(200, {"url": f"{hub.url}/{name}", "name": name, "id": name})

            def _commit(self, kind, repo, files, body):
                for line in body.decode().splitlines():
                    item = json.loads(line)
                    if item.get("key") == "file":
                        files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                    elif item.get("key") == "deletedFile":
                        files.pop(item["value"]["path"], None)
                oid = hashlib.sha1(f"{len(hub.commits[(kind, repo)])} {sorted(files)}".encode()).hexdigest()
                hub.commits[(kind, repo)].append(oid)
                return self._reply(200, {"commitUrl": f"{hub.url}/{repo}/commit/{oid}", "commitOid": oid,
                                         "success": True})

            def _head(self, kind, repo):
                return (hub.commits.get((kind, repo)) or ["0" * 40])[-1]

            def _variables(self, repo):
                return {k: {"value": v, "description": None} for k, v in hub.variables.get(repo, {}).items()}

            def do_GET(self):
                hub.requests.append(f"{self.command} {self.path}")
                path = self.path.split("?")[0]
                if path == "/api/whoami-v2":
                    user = self._user()
                    if user is False:
                        return
                    return self._reply(200, {"type": "user", "name": user or "user", "orgs": [],
                                             "auth": {"type": "access_token", "accessToken": {"role": "write"}}})
                match = API_REPO.match(path)
                if match:
                    kind, repo, action, _ = match.groups()
                    files = hub.files(kind).get(repo)
                    if files is None:
                        return self._reply(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
                    if action == "revision":
                        return self._reply(200, {"id": repo, "sha": self._head(kind, repo), "private": False,
                                                 "siblings": [{"rfilename": name} for name in sorted(files)]})
                    if action == "tree":
                        return self._reply(200, [{"type": "file", "path": name, "size": len(data),
                                                  "oid": git_blob_oid(data)} for name, data in sorted(files.items())])
                    if action == "variables":
                        return self._reply(200, self._variables(repo))
                match = RESOLVE.match(path)  # /{user}/{repo}/resolve/{revision}/{file}, /spaces/... for Spaces
                if match:
                    kind, repo, name = match.groups()
                    files = hub.files(kind or "models").get(repo)
                    if files is None:
                        return self._reply(401, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
                    if name not in files:
                        return self._reply(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
                    data = files[name]
                    return self._reply(200, data, {"ETag": f'"{git_blob_oid(data)}"', "X-Repo-Commit": "1" * 40,
                                                   "Content-Type": "application/octet-stream"})
                return self._reply(404, {"error": f"not faked: GET {self.path}"})

            do_HEAD = do_GET

        return Handler
