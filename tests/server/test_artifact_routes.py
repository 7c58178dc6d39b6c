"""Artifacts over HTTP: uploads, listing, downloads, deletion, and remote attach.

The first part drives the app in-process; the second starts real servers
(``python -m labnotebook.server``) and logs through them with
``labnotebook.init("http://...")``, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from servertools import READ_TOKEN, TOKEN, error_of, make_app
from test_remote import ServerProcess

import labnotebook
from labnotebook import Notebook, NotFoundError, Settings
from labnotebook._artifacts import BlobStore
from labnotebook._store.base import ArtifactCreate, Batch, RunCreate
from labnotebook._store.http import MAX_REQUEST_BYTES, HttpStore, _cut
from labnotebook.server import ServerConfig, create_app
from labnotebook.server._openapi import document
from labnotebook.server.artifacts import content_disposition
from proxy import Proxy

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)

CSV = 'données "finales";.csv'


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def row(data: bytes, name: str = "a.bin", **changes: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": "file",
        "name": name,
        "step": None,
        "size": len(data),
        "sha256": sha(data),
        "media_type": "application/octet-stream",
        "created_at": time.time(),
        "meta": {},
    }
    out.update(changes)
    return out


def batch(run_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "create": {
            "experiment": "e",
            "name": "r",
            "params": {},
            "tags": [],
            "started_at": time.time(),
        },
        **fields,
    }


@pytest.fixture
def server_blobs(tmp_path: Path) -> Path:
    return tmp_path / "server-artifacts"


@pytest.fixture
def app(store_url: str, server_blobs: Path) -> Iterator[Flask]:
    app = make_app(store_url, artifacts=str(server_blobs), max_artifact_size=4096)
    yield app
    app.extensions["labnotebook"].store.close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def upload(client: FlaskClient, data: bytes) -> str:
    response = client.put(f"/api/v1/blobs/{sha(data)}", data=data)
    assert response.status_code in (200, 201), response.get_data(as_text=True)
    return sha(data)


def attach(client: FlaskClient, run_id: str, *rows: dict[str, Any]) -> None:
    response = client.post("/api/v1/ingest", json=batch(run_id, artifacts=list(rows)))
    assert response.status_code == 200, response.get_data(as_text=True)


def leftovers(root: Path) -> list[Path]:
    tmp = root / "tmp"
    return list(tmp.iterdir()) if tmp.exists() else []


# ------------------------------------------------------------------ uploads


def test_an_upload_is_stored_once_and_checked(
    client: FlaskClient, server_blobs: Path
) -> None:
    data = os.urandom(3000)
    path = f"/api/v1/blobs/{sha(data)}"
    missing = client.head(path)
    assert missing.status_code == 404
    assert "Content-Type" not in missing.headers  # no body, so no type

    created = client.put(path, data=data)
    assert created.status_code == 201
    assert created.get_json() == {"sha256": sha(data), "size": 3000}
    again = client.put(path, data=data)
    assert again.status_code == 200
    held = client.head(path)
    assert held.status_code == 200
    assert "Content-Type" not in held.headers
    assert held.headers["X-Blob-Size"] == "3000"
    stored = server_blobs / "objects" / sha(data)[:2] / sha(data)[2:]
    assert stored.read_bytes() == data
    assert leftovers(server_blobs) == []


def test_a_body_with_another_hash_is_refused_and_nothing_is_kept(
    client: FlaskClient, server_blobs: Path
) -> None:
    data = b"the real bytes"
    error = error_of(client.put(f"/api/v1/blobs/{sha(b'other')}", data=data), 422)
    assert error["code"] == "hash_mismatch"
    assert sha(data) in error["message"]
    assert client.head(f"/api/v1/blobs/{sha(b'other')}").status_code == 404
    assert not (server_blobs / "objects").exists()
    assert leftovers(server_blobs) == []


@pytest.mark.parametrize(
    "bad", ["abc", "A" * 64, "g" * 64, "0" * 63, "0" * 65, "..%2F..%2Fetc%2Fpasswd"]
)
def test_a_bad_sha256_never_reaches_the_filesystem(
    client: FlaskClient, server_blobs: Path, bad: str
) -> None:
    response = client.put(f"/api/v1/blobs/{bad}", data=b"x")
    assert response.status_code in (404, 422)  # 404: no route once %2F is a "/"
    error_of(response, response.status_code)
    assert client.head(f"/api/v1/blobs/{bad}").status_code == 404
    assert not server_blobs.exists()


def test_an_upload_over_the_size_cap_is_413_and_leaves_no_temp_file(
    client: FlaskClient, server_blobs: Path
) -> None:
    data = os.urandom(5000)
    error = error_of(client.put(f"/api/v1/blobs/{sha(data)}", data=data), 413)
    assert error["code"] == "artifact_too_large"
    assert error["detail"] == {"limit": 4096}
    assert "max_artifact_size" in error["message"]

    assert leftovers(server_blobs) == []
    assert client.head(f"/api/v1/blobs/{sha(data)}").status_code == 404


# ------------------------------------------------------------------ ingest


def test_a_batch_naming_bytes_not_uploaded_is_refused_whole(
    client: FlaskClient,
) -> None:
    data = b"never uploaded"
    body = batch("run1", artifacts=[row(data)], points={"loss": [[0], [1.0], [0.0]]})
    error = error_of(client.post("/api/v1/ingest", json=body), 422, "blob_missing")
    assert "upload" in error["message"]
    assert f"PUT /api/v1/blobs/{sha(data)}" in error["message"]
    error_of(client.get("/api/v1/runs/run1"), 404)

    upload(client, data)
    assert client.post("/api/v1/ingest", json=body).status_code == 200
    listed = client.get("/api/v1/runs/run1/artifacts").get_json()["artifacts"]
    assert [(a["name"], a["sha256"], a["size"]) for a in listed] == [
        ("a.bin", sha(data), len(data))
    ]


def test_a_folder_needs_every_file_uploaded(
    client: FlaskClient, server_blobs: Path
) -> None:
    files = {"a.txt": b"alpha", "sub/b.txt": b"beta"}
    manifest = json.dumps(
        {
            "format": 1,
            "files": [
                {"path": p, "size": len(d), "sha256": sha(d), "mode": 0o644}
                for p, d in sorted(files.items())
            ],
            "skipped_links": [],
        }
    ).encode()
    upload(client, manifest)
    upload(client, b"alpha")
    folder = row(manifest, "data", kind="folder", size=9, media_type="application/json")
    error = error_of(
        client.post("/api/v1/ingest", json=batch("run1", artifacts=[folder])),
        422,
        "blob_missing",
    )
    assert sha(b"beta") in error["message"]

    upload(client, b"beta")
    attach(client, "run1", folder)
    # A file of the folder is one of the run's blobs.
    member = client.get(f"/api/v1/runs/run1/blobs/{sha(b'beta')}")
    assert member.status_code == 200
    assert member.data == b"beta"
    folder_id = _by_name(client)["data"]["id"]
    manifest_download = client.get(f"/api/v1/runs/run1/artifacts/{folder_id}/content")
    assert manifest_download.data == manifest

    # The whole folder, as a tar file of data/<path> members.
    archive = client.get(f"/api/v1/runs/run1/artifacts/{folder_id}/archive")
    assert archive.status_code == 200
    assert archive.mimetype == "application/x-tar"
    assert archive.content_length == len(archive.data)
    assert 'filename="data.tar"' in archive.headers["Content-Disposition"]
    with tarfile.open(fileobj=io.BytesIO(archive.data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert sorted(members) == ["data/a.txt", "data/sub/b.txt"]
        assert members["data/a.txt"].mode == 0o644
        member = tar.extractfile("data/sub/b.txt")
        assert member is not None and member.read() == b"beta"

    # Only folders have one; a folder whose bytes are gone says so.
    upload(client, b"plain")
    attach(client, "run1", row(b"plain", "plain.txt"))
    plain_id = _by_name(client)["plain.txt"]["id"]
    error_of(
        client.get(f"/api/v1/runs/run1/artifacts/{plain_id}/archive"),
        422,
        "not_a_folder",
    )
    BlobStore(server_blobs, 4096).delete(sha(b"alpha"))
    error = error_of(
        client.get(f"/api/v1/runs/run1/artifacts/{folder_id}/archive"),
        404,
        "blob_missing",
    )
    assert "attach it again" in error["message"]


_GOOD = row(b"x")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kind": "video"}, "kind"),
        ({"name": "a/b"}, "name"),
        ({"name": ".."}, "name"),
        ({"name": "x\x00y"}, "name"),
        ({"name": "n" * 256}, "name"),
        ({"sha256": "A" * 64}, "sha256"),
        ({"sha256": "../../etc/passwd"}, "sha256"),
        ({"size": -1}, "size"),
        ({"size": "1"}, "size"),
        ({"step": -5}, "step"),
        ({"media_type": "text/html\r\nX-Evil: 1"}, "media_type"),
        ({"media_type": ""}, "media_type"),
        ({"created_at": "now"}, "created_at"),
        ({"meta": [1]}, "meta"),
        ({"meta": []}, "meta"),
        ({"meta": ""}, "meta"),
        ({"extra": 1}, "extra"),
    ],
)
def test_every_field_of_an_artifact_row_is_checked(
    client: FlaskClient, change: dict[str, Any], field: str
) -> None:
    upload(client, b"x")
    body = batch("run1", artifacts=[{**_GOOD, **change}])
    error = error_of(client.post("/api/v1/ingest", json=body), 422)
    assert field in error["detail"]["field"]


def test_a_size_that_disagrees_with_the_blob_is_refused(client: FlaskClient) -> None:
    upload(client, b"xyz")
    body = batch("run1", artifacts=[row(b"xyz", size=4)])
    error = error_of(client.post("/api/v1/ingest", json=body), 422)
    assert "4 bytes" in error["message"]


@pytest.mark.parametrize(
    "console",
    [
        "text",
        [[1.0, "stdin", "x"]],
        [[1.0, "stdout"]],
        [["t", "stdout", "x"]],
        [[1.0, "stdout", 5]],
    ],
)
def test_console_rows_are_checked(client: FlaskClient, console: Any) -> None:
    body = batch("run1", console=console)
    error = error_of(client.post("/api/v1/ingest", json=body), 422)
    assert error["detail"]["field"] == "console"


def test_console_text_keeps_what_the_store_cannot_hold_as_replacement_characters(
    client: FlaskClient,
) -> None:
    body = batch("run1", console=[[1.0, "stdout", "a\x00b"], [2.0, "stderr", "ok\n"]])
    assert client.post("/api/v1/ingest", json=body).status_code == 200
    chunks = client.get("/api/v1/runs/run1/console").get_json()["chunks"]
    assert [(c["stream"], c["text"]) for c in chunks] == [
        ("stdout", "a\ufffdb"),
        ("stderr", "ok\n"),
    ]


# ------------------------------------------------------------------ downloads


@pytest.fixture
def attached(client: FlaskClient) -> dict[str, bytes]:
    files = {
        "page.html": (b"<script>alert(1)</script>", "text/html"),
        "logo.svg": (b"<svg onload='alert(1)'/>", "image/svg+xml"),
        "dot.png": (PNG, "image/png"),
        CSV: (b"a,b\n1,2\n" * 100, "text/csv"),
    }
    rows = []
    for name, (data, media_type) in files.items():
        upload(client, data)
        rows.append(row(data, name, media_type=media_type))
    attach(client, "run1", *rows)
    return {name: data for name, (data, _) in files.items()}


def _by_name(client: FlaskClient, run_id: str = "run1") -> dict[str, dict[str, Any]]:
    listed = client.get(f"/api/v1/runs/{run_id}/artifacts").get_json()["artifacts"]
    return {a["name"]: a for a in listed}


def test_downloads_are_attachments_and_only_plain_images_keep_their_type(
    client: FlaskClient, attached: dict[str, bytes]
) -> None:
    artifacts = _by_name(client)
    for name, data in attached.items():
        response = client.get(
            f"/api/v1/runs/run1/artifacts/{artifacts[name]['id']}/content"
        )
        assert response.status_code == 200
        assert response.data == data
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in response.headers["Content-Security-Policy"]
        assert response.headers["Accept-Ranges"] == "bytes"
        disposition = response.headers["Content-Disposition"]
        if name == "dot.png":
            assert response.mimetype == "image/png"
            assert disposition.startswith("inline;")
        else:
            assert response.mimetype == "application/octet-stream"
            assert disposition.startswith("attachment;")

    html = client.get(
        f"/api/v1/runs/run1/artifacts/{artifacts['page.html']['id']}/content"
    )
    assert 'filename="page.html"' in html.headers["Content-Disposition"]
    csv_id = artifacts[CSV]["id"]
    csv = client.get(f"/api/v1/runs/run1/artifacts/{csv_id}/content")
    header = csv.headers["Content-Disposition"]
    assert "filename*=UTF-8''donn%C3%A9es%20%22finales%22%3B.csv" in header
    assert 'filename="donn_es _finales__.csv"' in header


def test_a_download_resumes_with_range(
    client: FlaskClient, attached: dict[str, bytes]
) -> None:
    data = attached[CSV]
    artifact = _by_name(client)[CSV]
    url = f"/api/v1/runs/run1/artifacts/{artifact['id']}/content"
    part = client.get(url, headers={"Range": "bytes=100-"})
    assert part.status_code == 206
    assert part.data == data[100:]
    assert part.headers["Content-Range"] == f"bytes 100-{len(data) - 1}/{len(data)}"
    same = client.get(
        url, headers={"Range": "bytes=10-19", "If-Range": f'"{artifact["sha256"]}"'}
    )
    assert same.status_code == 206
    assert same.data == data[10:20]
    error_of(client.get(url, headers={"Range": f"bytes={len(data) + 5}-"}), 416)
    cached = client.get(url, headers={"If-None-Match": f'"{artifact["sha256"]}"'})
    assert cached.status_code == 304
    assert cached.data == b""


@pytest.mark.parametrize(
    "header",
    [
        "bytes=0-1,5-9",  # several ranges: not served, the whole file is
        "bytes=abc",
        "bytes=-",
        "bytes=9-2",
        "items=0-1",  # a unit other than bytes
        "0-10",
    ],
)
def test_a_range_the_server_does_not_serve_is_ignored(
    client: FlaskClient, attached: dict[str, bytes], header: str
) -> None:
    # RFC 9110 (14.2): a server ignores a Range it does not understand or does
    # not serve and sends the whole file; 416 is only for a range past the end.
    artifact = _by_name(client)[CSV]
    url = f"/api/v1/runs/run1/artifacts/{artifact['id']}/content"
    for method in ("GET", "HEAD"):
        response = client.open(url, method=method, headers={"Range": header})
        assert response.status_code == 200, (method, response.get_data(as_text=True))
        assert response.content_length == len(attached[CSV])
        assert "Content-Range" not in response.headers
    assert client.get(url, headers={"Range": header}).data == attached[CSV]


def test_range_edge_cases(client: FlaskClient, attached: dict[str, bytes]) -> None:
    data = attached[CSV]
    size = len(data)
    artifact = _by_name(client)[CSV]
    url = f"/api/v1/runs/run1/artifacts/{artifact['id']}/content"

    def part(header: str) -> Any:
        response = client.get(url, headers={"Range": header})
        assert response.status_code == 206, (header, response.get_data(as_text=True))
        return response

    first = part("bytes=0-0")
    assert (first.data, first.headers["Content-Range"]) == (
        data[:1],
        f"bytes 0-0/{size}",
    )
    tail = part("bytes=-3")
    assert tail.data == data[-3:]
    assert tail.headers["Content-Range"] == f"bytes {size - 3}-{size - 1}/{size}"
    last = part(f"bytes={size - 1}-")
    assert last.data == data[-1:]
    beyond = part(f"bytes=10-{size * 10}")
    assert beyond.data == data[10:]
    # A suffix longer than the file is the whole file (RFC 9110, 14.1.2).
    whole = part(f"bytes=-{size + 100}")
    assert whole.data == data
    assert whole.headers["Content-Range"] == f"bytes 0-{size - 1}/{size}"

    for header in (f"bytes={size}-", f"bytes={size + 5}-{size + 9}", "bytes=-0"):
        for method in ("GET", "HEAD"):
            response = client.open(url, method=method, headers={"Range": header})
            assert response.headers["Content-Range"] == f"bytes */{size}"
            if method == "GET":
                error = error_of(response, 416, "requested_range_not_satisfiable")
                assert str(size) in error["message"]
                assert header in error["message"]
                assert error["detail"] == {"size": size}
            else:
                assert response.status_code == 416

    # A Range the ETag in If-Range does not match is ignored: the whole file.
    stale = client.get(
        url, headers={"Range": f"bytes={size + 5}-", "If-Range": '"0000"'}
    )
    assert stale.status_code == 200
    assert stale.data == data


def test_a_failed_if_match_is_412_in_the_error_shape(
    client: FlaskClient, attached: dict[str, bytes]
) -> None:
    artifact = _by_name(client)[CSV]
    urls = [
        f"/api/v1/runs/run1/artifacts/{artifact['id']}/content",
        f"/api/v1/runs/run1/blobs/{artifact['sha256']}",
    ]
    for url in urls:
        failed = client.get(url, headers={"If-Match": '"0000"'})
        error = error_of(failed, 412, "precondition_failed")
        assert artifact["sha256"] in error["message"]
        assert "If-Match" in error["message"]
        assert client.head(url, headers={"If-Match": '"0000"'}).status_code == 412
        ok = client.get(url, headers={"If-Match": f'"{artifact["sha256"]}"'})
        assert ok.status_code == 200
        assert ok.data == attached[CSV]
        assert client.get(url, headers={"If-Match": "*"}).status_code == 200


def test_a_run_serves_only_its_own_blobs(
    client: FlaskClient, attached: dict[str, bytes]
) -> None:
    dot = client.get(f"/api/v1/runs/run1/blobs/{sha(PNG)}")
    assert dot.status_code == 200
    assert dot.data == PNG
    assert dot.mimetype == "image/png"

    upload(client, b"other run")
    attach(client, "run2", row(b"other run"))
    error_of(client.get(f"/api/v1/runs/run1/blobs/{sha(b'other run')}"), 404)
    error_of(client.get(f"/api/v1/runs/run2/blobs/{sha(PNG)}"), 404)
    error_of(client.get("/api/v1/runs/run1/blobs/not-a-hash"), 404)
    error_of(client.get(f"/api/v1/runs/nope/blobs/{sha(PNG)}"), 404)


def test_listing_filters_by_kind_and_name(
    client: FlaskClient, attached: dict[str, bytes]
) -> None:
    upload(client, PNG)
    attach(client, "run1", row(PNG, "dot.png", kind="image", step=3))
    images = client.get("/api/v1/runs/run1/artifacts?kind=image").get_json()
    assert [(a["name"], a["step"]) for a in images["artifacts"]] == [("dot.png", 3)]
    named = client.get("/api/v1/runs/run1/artifacts?name=dot.png").get_json()
    assert [a["kind"] for a in named["artifacts"]] == ["file", "image"]
    error_of(client.get("/api/v1/runs/run1/artifacts?kind=video"), 400)
    error_of(client.get(f"/api/v1/runs/run1/artifacts?name={'n' * 300}"), 422)
    error_of(client.get("/api/v1/runs/run1/artifacts?colour=red"), 400)
    error_of(client.get("/api/v1/runs/nope/artifacts"), 404)


def test_deleting_an_artifact_removes_bytes_no_one_else_uses(
    client: FlaskClient, attached: dict[str, bytes], server_blobs: Path
) -> None:
    attach(client, "run2", row(PNG, "shared.png"))
    artifacts = _by_name(client)
    html = artifacts["page.html"]
    assert client.delete(f"/api/v1/runs/run1/artifacts/{html['id']}").status_code == 204
    assert client.head(f"/api/v1/blobs/{html['sha256']}").status_code == 404
    error_of(client.delete(f"/api/v1/runs/run1/artifacts/{html['id']}"), 404)

    dot = artifacts["dot.png"]
    assert client.delete(f"/api/v1/runs/run1/artifacts/{dot['id']}").status_code == 204
    assert client.head(f"/api/v1/blobs/{sha(PNG)}").status_code == 200  # run2's
    assert sorted(_by_name(client)) == [CSV, "logo.svg"]
    error_of(client.delete(f"/api/v1/runs/run2/artifacts/{2**63}"), 404)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("model.pt", "attachment; filename=\"model.pt\"; filename*=UTF-8''model.pt"),
        ("..hidden", "attachment; filename=\"hidden\"; filename*=UTF-8''hidden"),
        ("a\tb", "attachment; filename=\"a b\"; filename*=UTF-8''a%20b"),
        (
            "日本.txt",
            "attachment; filename=\"__.txt\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.txt",
        ),
        ("..", "attachment; filename=\"download\"; filename*=UTF-8''download"),
    ],
)
def test_content_disposition_is_safe(name: str, expected: str) -> None:
    assert content_disposition(name) == expected


# ------------------------------------------------------------------ auth


def test_uploads_need_the_write_token_and_reads_the_read_token(
    store_url: str, tmp_path: Path
) -> None:
    app = make_app(
        store_url, token=TOKEN, read_token=READ_TOKEN, artifacts=str(tmp_path / "a")
    )
    client = app.test_client()
    path = f"/api/v1/blobs/{sha(b'x')}"
    read = {"Authorization": f"Bearer {READ_TOKEN}"}
    write = {"Authorization": f"Bearer {TOKEN}"}
    error_of(client.put(path, data=b"x"), 401)
    error_of(client.put(path, data=b"x", headers=read), 403)
    assert client.head(path).status_code == 401
    assert client.head(path, headers=read).status_code == 404
    assert client.put(path, data=b"x", headers=write).status_code == 201
    assert client.head(path, headers=read).status_code == 200
    error_of(client.get("/api/v1/runs/r/artifacts"), 401)
    error_of(client.delete("/api/v1/runs/r/artifacts/1", headers=read), 403)
    app.extensions["labnotebook"].store.close()


# ------------------------------------------------------------ real servers


class CuttingProxy(Proxy):
    """A proxy that cuts the connection it carries once, after ``cut_after`` bytes.

    direction: "up" counts the bytes the client sends, "down" those it receives.
    cut_after: None never cuts. delay: seconds to wait after each counted chunk.
    """

    def __init__(
        self,
        target_port: int,
        cut_after: int | None,
        direction: str,
        delay: float = 0.0,
    ):
        super().__init__(target_port)
        self.cut_after = cut_after
        self.direction = direction
        self.delay = delay
        self.cuts = 0
        self.connections = 0
        self.passed = 0

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        # a: the client's socket, b: the server's.
        self.connections += 1
        sel = selectors.DefaultSelector()
        sel.register(a, selectors.EVENT_READ, b)
        sel.register(b, selectors.EVENT_READ, a)
        counted = a if self.direction == "up" else b
        try:
            while True:
                for key, _ in sel.select():
                    source: socket.socket = key.fileobj  # type: ignore[assignment]
                    data = source.recv(65536)
                    if not data:
                        return
                    if source is counted:
                        self.passed += len(data)
                        if (
                            self.cut_after is not None
                            and not self.cuts
                            and self.passed > self.cut_after
                        ):
                            self.cuts += 1
                            return
                        time.sleep(self.delay)
                    key.data.sendall(data)
        except OSError:
            return
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    s.close()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def start(store_url: str, **env: str) -> ServerProcess:
        env.setdefault("LABNOTEBOOK_ARTIFACTS", str(tmp_path / "server-artifacts"))
        server = ServerProcess(
            store_url, tmp_path / "servers", token=TOKEN, read_token=READ_TOKEN, env=env
        )
        started.append(server.start())
        return server

    yield start
    for server in started:
        server.stop(signal.SIGKILL)


def objects(root: Path) -> set[str]:
    return {p.parent.name + p.name for p in (root / "objects").glob("*/*")}


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def remote(url: str, home: Path) -> Notebook:
    return Notebook(
        Settings(
            url=url,
            token=TOKEN,
            home=str(home),
            flush_interval=0.05,
            retry_interval=0.1,
            capture_console="off",
            system_metrics_interval=0,
        )
    )


def test_attach_through_a_server_and_read_back_from_another_machine(
    store_url: str, start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = start_server(store_url)
    server_root = tmp_path / "server-artifacts"
    weights = os.urandom(3 * 2**20 + 17)
    config = tmp_path / "config.yaml"
    config.write_text("lr: 0.001\n")
    folder = tmp_path / "data"
    (folder / "sub" / "deeper").mkdir(parents=True)
    (folder / "a.txt").write_bytes(b"alpha")
    (folder / "sub" / "b.bin").write_bytes(os.urandom(5000))
    (folder / "sub" / "deeper" / "c.txt").write_bytes(b"")

    labnotebook.init(
        server.url,
        token=TOKEN,
        home=str(tmp_path / "trainer"),
        flush_interval=0.05,
        capture_console="off",
        system_metrics_interval=0,
    )
    try:
        with labnotebook.start("remote") as run:
            run.log(loss=1.0)
            run.attach(weights, name="weights.bin", step=1)
            run.attach(config)
            run.attach(folder)
        with labnotebook.start("again") as other:
            other.attach(weights, name="same-bytes.bin")
    finally:
        labnotebook.current().close()

    # Another machine, with nothing attached locally, reads through the server.
    reader = remote(server.url, tmp_path / "reader")
    try:
        listed = {a.name: a for a in reader.artifacts(run.id)}
        assert sorted(listed) == ["config.yaml", "data", "weights.bin"]
        assert listed["weights.bin"].step == 1
        assert listed["weights.bin"].size == len(weights)
        assert listed["data"].kind == "folder"
        assert reader.read_artifact(run.id, "weights.bin") == weights
        assert reader.read_artifact(run.id, "config.yaml") == b"lr: 0.001\n"
        restored = reader.download_artifact(run.id, "data", tmp_path / "restored")
        for path in folder.rglob("*"):
            copy = restored / path.relative_to(folder)
            assert (
                copy.is_dir()
                if path.is_dir()
                else copy.read_bytes() == (path.read_bytes())
            )
        assert reader.read_artifact(other.id, "same-bytes.bin") == weights
    finally:
        reader.close()

    # Equal bytes are kept once: weights, config, the manifest and three files.
    assert len(objects(server_root)) == 6
    assert sha(weights) in objects(server_root)
    assert not list((server_root / "tmp").iterdir())


def test_delete_artifacts_through_a_server_removes_the_servers_bytes(
    store_url: str, start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = start_server(store_url)
    server_root = tmp_path / "server-artifacts"
    notebook = remote(server.url, tmp_path / "trainer")
    try:
        with notebook.start("remote") as run:
            run.attach(b"keep me", name="keep.txt")
            run.attach(b"drop me", name="drop.txt", step=3)
        assert sha(b"drop me") in objects(server_root)
        (deleted,) = notebook.delete_artifacts(run.id, "drop.txt")
        assert deleted.step == 3
        assert sha(b"drop me") not in objects(server_root)
        assert [a.name for a in notebook.artifacts(run.id)] == ["keep.txt"]
        assert notebook.read_artifact(run.id, "keep.txt") == b"keep me"
    finally:
        notebook.close()


@pytest.mark.filterwarnings("ignore:.*store refused a batch:RuntimeWarning")
def test_bytes_attached_to_a_run_deleted_meanwhile_do_not_stay_on_the_server(
    store_url: str, start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = start_server(store_url)
    server_root = tmp_path / "server-artifacts"
    folder = tmp_path / "tokenizer"
    folder.mkdir()
    (folder / "vocab.txt").write_bytes(b"only in this folder")
    trainer = remote(server.url, tmp_path / "trainer")
    other = remote(server.url, tmp_path / "other")
    try:
        with other.start("keeps its bytes") as keeper:
            keeper.attach(b"shared bytes", name="shared.bin")
        run = trainer.start("deleted while it trains")
        run.log(loss=1.0)
        assert run.flush(30)
        other.delete_run(run.id)
        # The trainer goes on: its uploads are refused with the batch that
        # names them, and must not stay on the server with no artifact.
        checkpoint = os.urandom(200_000)
        run.attach(checkpoint, name="checkpoint.pt")
        run.attach(b"shared bytes", name="shared.bin")
        run.attach(folder)
        run.finish()
        assert list((tmp_path / "trainer" / "spool").glob("*.rejected"))
        stored = objects(server_root)
        assert sha(checkpoint) not in stored
        assert sha(b"only in this folder") not in stored
        assert sha(b"shared bytes") in stored
        assert other.read_artifact(keeper.id, "shared.bin") == b"shared bytes"
        assert stored == {sha(b"shared bytes")}
        assert not list((server_root / "tmp").iterdir())
    finally:
        trainer.close()
        other.close()


def test_bytes_missing_on_the_server_read_as_not_found_as_on_a_database(
    store_url: str, start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = start_server(store_url)
    server_root = tmp_path / "server-artifacts"
    trainer = remote(server.url, tmp_path / "trainer")
    reader = remote(server.url, tmp_path / "reader")
    try:
        with trainer.start("lost bytes") as run:
            run.attach(b"these bytes go missing", name="lost.txt")
        digest = sha(b"these bytes go missing")
        (server_root / "objects" / digest[:2] / digest[2:]).unlink()
        with pytest.raises(NotFoundError, match=f"lost.txt.*{digest}"):
            reader.read_artifact(run.id, "lost.txt")
        with pytest.raises(NotFoundError, match=digest):
            reader.download_artifact(run.id, "lost.txt", tmp_path / "out")
    finally:
        trainer.close()
        reader.close()


def test_an_upload_cut_midway_is_sent_again_and_a_cut_download_resumes(
    store_url: str, start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    # Uploads are streamed: the JSON body limit does not apply to them.
    server = start_server(store_url, LABNOTEBOOK_MAX_BODY_BYTES=str(2**20))
    server_root = tmp_path / "server-artifacts"
    local = BlobStore(tmp_path / "local", 2**30)
    data = os.urandom(8 * 2**20)
    digest, size = local.put_bytes(data)
    up = CuttingProxy(server.port, cut_after=2**20, direction="up")
    up.start()
    store = HttpStore(f"http://127.0.0.1:{up.port}", token=TOKEN, blobs=local)
    try:
        first = Batch(
            run_id=uuid.uuid4().hex,
            create=RunCreate(
                experiment="e", name="cut", params={}, tags=[], started_at=time.time()
            ),
            artifacts=[
                ArtifactCreate(
                    kind="file",
                    name="big.bin",
                    step=None,
                    size=size,
                    sha256=digest,
                    media_type="application/octet-stream",
                    created_at=time.time(),
                )
            ],
        )
        store.write(first)
        assert up.cuts == 1
        assert up.connections >= 2
        assert (server_root / "objects" / digest[:2] / digest[2:]).read_bytes() == data
        # The server dropped the half-written upload.
        assert wait_until(lambda: not list((server_root / "tmp").iterdir()))
        assert [a.name for a in store.list_artifacts(first.run_id)] == ["big.bin"]
    finally:
        store.close()
        up.stop()

    down = CuttingProxy(server.port, cut_after=3 * 2**20, direction="down")
    down.start()
    reader = HttpStore(f"http://127.0.0.1:{down.port}", token=TOKEN)
    try:
        with reader.open_blob(first.run_id, digest) as f:
            assert f.read() == data
        assert down.cuts == 1
        assert down.connections == 2  # the second one asked for the rest (Range)
    finally:
        reader.close()
        down.stop()


def test_a_real_server_caps_uploads_and_checks_tokens(
    store_url: str,
    start_server: Callable[..., ServerProcess],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = start_server(store_url, LABNOTEBOOK_MAX_ARTIFACT_SIZE="100000")
    server_root = tmp_path / "server-artifacts"
    data = os.urandom(200_000)
    url = f"{server.url}/api/v1/blobs/{sha(data)}"
    write = {"Authorization": f"Bearer {TOKEN}"}

    error_of(_Response(requests.put(url, data=data, headers=write)), 413)

    def chunked() -> Iterator[bytes]:
        for i in range(0, len(data), 10_000):
            yield data[i : i + 10_000]

    capped = requests.put(url, data=chunked(), headers=write)
    assert capped.status_code == 413
    assert capped.json()["error"]["code"] == "artifact_too_large"
    assert wait_until(lambda: not list((server_root / "tmp").iterdir()))

    error_of(_Response(requests.put(url, data=b"x")), 401)
    read = {"Authorization": f"Bearer {READ_TOKEN}"}
    error_of(_Response(requests.put(url, data=b"x", headers=read)), 403)
    small = b"small"
    assert requests.head(f"{server.url}/api/v1/blobs/{sha(small)}").status_code == 401
    put = requests.put(
        f"{server.url}/api/v1/blobs/{sha(small)}", data=small, headers=write
    )
    assert put.status_code == 201
    head = requests.head(f"{server.url}/api/v1/blobs/{sha(small)}", headers=read)
    assert head.status_code == 200

    # A file the server refuses is left out of its batch; the rest arrives.
    caplog.set_level(logging.WARNING, logger="labnotebook._store.http")
    nb = remote(server.url, tmp_path / "trainer")
    try:
        with nb.start("capped") as run:
            run.log(loss=0.5)
            run.attach(data, name="too-big.bin")
            run.attach(small, name="small.bin")
        assert [a.name for a in nb.artifacts(run.id)] == ["small.bin"]
        assert nb.get_run(run.id).summary["loss"].last == 0.5
    finally:
        nb.close()
    assert "too-big.bin" in caplog.text


def _raw_request(port: int, head: str, body: bytes) -> tuple[int, dict[str, Any]]:
    """Send bytes as they are (no client fixes them up); the status and JSON body."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(head.encode() + b"\r\n\r\n" + body)
        conn.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    headers, _, content = rest.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in headers.lower(), answer
    return int(status_line.split()[1]), json.loads(content)


@pytest.mark.parametrize(
    "body",
    [
        b"ZZ\r\nchunky data\r\n0\r\n\r\n",  # a chunk size that is not hex
        b"b\r\nchunky data",  # the body ends inside a chunk
        b"b\r\nchunky dataXX0\r\n\r\n",  # no line end after the chunk
    ],
)
def test_a_malformed_chunked_upload_is_400_and_keeps_nothing(
    store_url: str,
    start_server: Callable[..., ServerProcess],
    tmp_path: Path,
    body: bytes,
) -> None:
    server = start_server(store_url)
    data = b"chunky data"
    head = (
        f"PUT /api/v1/blobs/{sha(data)} HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {TOKEN}\r\nTransfer-Encoding: chunked\r\n"
        "Connection: close"
    )
    status, answer = _raw_request(server.port, head, body)
    assert status == 400, answer
    assert answer["error"]["code"] == "invalid_body"
    assert "chunk" in answer["error"]["message"]
    assert not objects(tmp_path / "server-artifacts")
    assert wait_until(lambda: not leftovers(tmp_path / "server-artifacts"))
    # Sent well, the same bytes are taken.
    status, answer = _raw_request(server.port, head, b"b\r\nchunky data\r\n0\r\n\r\n")
    assert (status, answer) == (201, {"sha256": sha(data), "size": len(data)})


class _Response:
    """A requests response as servertools.error_of reads it."""

    def __init__(self, response: requests.Response):
        self.status_code = response.status_code
        self.mimetype = response.headers.get("Content-Type", "").split(";")[0]
        self._response = response

    def get_json(self) -> Any:
        return self._response.json()

    def get_data(self, as_text: bool = False) -> str:
        return self._response.text


@pytest.mark.filterwarnings("ignore:.*logging continues into:RuntimeWarning")
def test_files_attached_while_the_server_is_away_arrive_when_it_is_back(
    store_url: str, start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = start_server(store_url)
    proxy = Proxy(server.port)
    proxy.start()
    nb = remote(f"http://127.0.0.1:{proxy.port}", tmp_path / "trainer")
    data = os.urandom(300_000)
    try:
        run = nb.start("offline")
        nb.store.retry_time = 0.5  # type: ignore[attr-defined]
        proxy.stop()
        run.log(loss=1.0)
        run.attach(data, name="made-offline.bin")
        time.sleep(1.0)  # the writer fails and spools the batch
        proxy.start()
        assert run.finish()
        assert nb.read_artifact(run.id, "made-offline.bin") == data
    finally:
        nb.close()
        proxy.stop()
    reader = remote(server.url, tmp_path / "reader")
    try:
        assert reader.read_artifact(run.id, "made-offline.bin") == data
    finally:
        reader.close()


def test_responses_match_the_openapi_document(client: FlaskClient) -> None:
    doc = document()
    data = os.urandom(100)
    path = f"/api/v1/blobs/{sha(data)}"
    checks = [
        ("/api/v1/blobs/{sha256}", "put", client.put(path, data=data)),
        ("/api/v1/blobs/{sha256}", "put", client.put(path, data=data)),
        ("/api/v1/blobs/{sha256}", "put", client.put(path, data=b"other")),
        ("/api/v1/blobs/{sha256}", "put", client.put(path, data=os.urandom(5000))),
    ]
    body = batch("run1", artifacts=[row(data)], console=[[1.0, "stdout", "hello\n"]])
    assert client.post("/api/v1/ingest", json=body).status_code == 200
    artifact_id = _by_name(client)["a.bin"]["id"]
    for url, template in [
        ("/api/v1/runs/run1/artifacts", "/api/v1/runs/{run_id}/artifacts"),
        ("/api/v1/runs/run1/artifacts?kind=x", "/api/v1/runs/{run_id}/artifacts"),
        ("/api/v1/runs/nope/artifacts", "/api/v1/runs/{run_id}/artifacts"),
        ("/api/v1/runs/run1/console", "/api/v1/runs/{run_id}/console"),
        ("/api/v1/runs/run1/console?limit=0", "/api/v1/runs/{run_id}/console"),
        (
            f"/api/v1/runs/run1/artifacts/{artifact_id}/content",
            "/api/v1/runs/{run_id}/artifacts/{artifact_id}/content",
        ),
        (
            f"/api/v1/runs/run1/blobs/{sha(b'nope')}",
            "/api/v1/runs/{run_id}/blobs/{sha256}",
        ),
    ]:
        checks.append((template, "get", client.get(url)))
    checks.append(
        (
            "/api/v1/runs/{run_id}/artifacts/{artifact_id}",
            "delete",
            client.delete(f"/api/v1/runs/run1/artifacts/{artifact_id}"),
        )
    )
    for template, method, response in checks:
        operation = doc["paths"][template][method]
        status = str(response.status_code)
        assert status in operation["responses"], (template, method, status)
        content = operation["responses"][status].get("content")
        if content is None:
            assert not response.data
            continue
        assert response.mimetype in content, (template, response.mimetype)
        if response.mimetype == "application/json":
            schema = content["application/json"]["schema"]
            resource = DRAFT202012.create_resource(doc)
            registry: Registry[Any] = Registry().with_resource("urn:doc", resource)
            pointer = (
                "/paths/"
                + template.replace("~", "~0").replace("/", "~1")
                + f"/{method}/responses/{status}/content/application~1json/schema"
            )
            assert schema is not None
            jsonschema.Draft202012Validator(
                {"$ref": f"urn:doc#{pointer}"}, registry=registry
            ).validate(response.get_json())


_FULL_DISK = """
import hashlib, json, resource, signal, sys
sys.path.insert(0, sys.argv[3])
from servertools import make_app

app = make_app(sys.argv[1], artifacts=sys.argv[2])
data = bytes(range(256)) * 2000
# The kernel refuses writes past 100 kB (EFBIG), as a full disk would (ENOSPC).
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
response = app.test_client().put(
    "/api/v1/blobs/" + hashlib.sha256(data).hexdigest(), data=data
)
print(json.dumps([response.status_code, response.get_json()]))
"""


def test_a_disk_that_fills_up_answers_507_and_keeps_nothing(
    store_url: str, server_blobs: Path
) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _FULL_DISK,
            store_url,
            str(server_blobs),
            str(Path(__file__).parent),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    status, body = json.loads(done.stdout.strip().splitlines()[-1])
    assert status == 507
    assert body["error"]["code"] == "insufficient_storage"
    assert "retry later" in body["error"]["message"]
    assert leftovers(server_blobs) == []
    assert not (server_blobs / "objects").exists()


def test_a_server_that_cannot_store_uploads_says_so_to_the_client(
    store_url: str, start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    # A file where the objects folder belongs: no upload can be stored, as on
    # a full disk; the server answers 507 and stays reachable.
    server_root = tmp_path / "broken-artifacts"
    server_root.mkdir()
    (server_root / "objects").write_bytes(b"")
    server = start_server(store_url, LABNOTEBOOK_ARTIFACTS=str(server_root))
    nb = Notebook(
        Settings(
            url=server.url,
            token=TOKEN,
            home=str(tmp_path / "trainer"),
            flush_interval=0.05,
            retry_interval=0.1,
            exit_timeout=2.0,
            capture_console="off",
            system_metrics_interval=0,
        )
    )
    try:
        nb.store.retry_time = 0.5  # type: ignore[attr-defined]
        run = nb.start("disk full")
        run.attach(b"no room for these bytes", name="weights.bin")
        with pytest.warns(RuntimeWarning) as caught:
            finished = run.finish()
        assert not finished
    finally:
        nb.close()
    message = str(caught[0].message)
    assert "HTTP 507" in message
    assert "artifact store cannot take the upload" in message
    assert "check that it is running and reachable" not in message
    assert "see its log" in message
    assert list((tmp_path / "trainer" / "spool").glob("*.spool"))


def test_one_request_tells_which_blobs_are_missing(client: FlaskClient) -> None:
    have = upload(client, b"have")
    lack = sha(b"lack")
    response = client.post(
        "/api/v1/blobs/missing", json={"sha256": [have, lack, lack, have]}
    )
    assert response.get_json() == {"missing": [lack]}
    assert client.post("/api/v1/blobs/missing", json={"sha256": []}).get_json() == {
        "missing": []
    }
    for bad in (lack, [lack.upper()], ["../x"], [1], [lack] * 10_001):
        error_of(client.post("/api/v1/blobs/missing", json={"sha256": bad}), 422)
    error_of(client.post("/api/v1/blobs/missing", json={}), 422, "missing_field")
    error_of(client.post("/api/v1/blobs/missing", data=b"x"), 415)


def test_bytes_the_server_lost_are_uploaded_again(
    store_url: str, start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = start_server(store_url)
    local = BlobStore(tmp_path / "local", 2**20)
    digest, size = local.put_bytes(b"model weights")
    store = HttpStore(server.url, token=TOKEN, blobs=local)

    def batch_with_file(name: str) -> Batch:
        return Batch(
            run_id=uuid.uuid4().hex,
            create=RunCreate(
                experiment="e", name=name, params={}, tags=[], started_at=time.time()
            ),
            artifacts=[
                ArtifactCreate(
                    kind="file",
                    name="w.bin",
                    step=None,
                    size=size,
                    sha256=digest,
                    media_type="application/octet-stream",
                    created_at=time.time(),
                )
            ],
        )

    try:
        first = batch_with_file("first")
        store.write(first)
        [artifact] = store.list_artifacts(first.run_id)
        # Deleting the only artifact with these bytes removes them on the server,
        # while this client still remembers them as uploaded.
        store.delete_artifacts(first.run_id, [artifact.id])
        assert (
            requests.head(
                f"{server.url}/api/v1/blobs/{digest}",
                headers={"Authorization": f"Bearer {TOKEN}"},
            ).status_code
            == 404
        )

        second = batch_with_file("second")
        store.write(second)
        with store.open_blob(second.run_id, digest) as f:
            assert f.read() == b"model weights"
    finally:
        store.close()


def test_a_folder_of_many_files_is_checked_in_one_request(
    store_url: str, start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = start_server(store_url)
    folder = tmp_path / "shards"
    folder.mkdir()
    for i in range(300):
        (folder / f"{i:04d}.txt").write_text(f"shard {i}\n")
    nb = remote(server.url, tmp_path / "trainer")
    try:
        with nb.start("many") as run:
            run.attach(folder)
        reader = remote(server.url, tmp_path / "reader")
        restored = reader.download_artifact(run.id, "shards", tmp_path / "restored")
        reader.close()
    finally:
        nb.close()
    assert sorted(p.name for p in restored.iterdir()) == sorted(
        p.name for p in folder.iterdir()
    )
    assert (restored / "0299.txt").read_text() == "shard 299\n"
    log = server.log.read_text()
    assert log.count("POST /api/v1/blobs/missing") == 1
    assert log.count("PUT /api/v1/blobs/") == 301  # the files and the manifest


def test_an_upload_survives_a_server_restart(
    store_url: str, start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = start_server(store_url)
    server_root = tmp_path / "server-artifacts"
    local = BlobStore(tmp_path / "local", 2**30)
    data = os.urandom(16 * 2**20)
    digest, size = local.put_bytes(data)
    # About 6 MB/s, so that the server can be stopped halfway.
    proxy = CuttingProxy(server.port, cut_after=None, direction="up", delay=0.01)
    proxy.start()
    store = HttpStore(
        f"http://127.0.0.1:{proxy.port}", token=TOKEN, blobs=local, retry_time=120
    )
    batch = Batch(
        run_id=uuid.uuid4().hex,
        create=RunCreate(
            experiment="e", name="restart", params={}, tags=[], started_at=time.time()
        ),
        artifacts=[
            ArtifactCreate(
                kind="file",
                name="big.bin",
                step=None,
                size=size,
                sha256=digest,
                media_type="application/octet-stream",
                created_at=time.time(),
            )
        ],
    )
    errors: list[BaseException] = []

    def send() -> None:
        try:
            store.write(batch)
        except BaseException as exc:  # handed to the test's thread
            errors.append(exc)

    # The server goes down while the upload is on its way, and comes back.
    sender = threading.Thread(target=send)
    sender.start()
    assert wait_until(lambda: proxy.passed > 2**20, 30)
    server.stop(signal.SIGKILL)
    assert proxy.passed < size
    proxy.delay = 0.0
    server.start()
    sender.join(120)
    try:
        assert not sender.is_alive()
        assert errors == []
        assert (server_root / "objects" / digest[:2] / digest[2:]).read_bytes() == data
        assert [a.name for a in store.list_artifacts(batch.run_id)] == ["big.bin"]
    finally:
        store.close()
        proxy.stop()


def test_a_batch_cut_in_parts_keeps_every_artifact_and_console_chunk() -> None:
    text = "x" * (3 * 2**20)
    console = [(float(i), "stdout", text) for i in range(5)]
    rows = [
        ArtifactCreate(
            kind="file",
            name=f"f{i}",
            step=i,
            size=1,
            sha256=sha(bytes([i])),
            media_type="application/octet-stream",
            created_at=float(i),
        )
        for i in range(3)
    ]
    whole = Batch(run_id="r", console=console, artifacts=rows, status="finished")
    parts = _cut(whole)
    assert len(parts) > 1
    assert all(len(p.to_json()) <= MAX_REQUEST_BYTES for p in parts)
    assert [c for p in parts for c in p.console] == console
    assert [a for p in parts for a in p.artifacts] == rows
    assert parts[-1].status == "finished"
    assert [p.id for p in _cut(whole)] == [p.id for p in parts]


def test_a_server_on_a_sqlite_file_serves_what_scripts_attached_to_it(
    tmp_path: Path,
) -> None:
    # The script and the server have different homes; the artifact store is the
    # folder next to the database file for both.
    url = f"sqlite:///{tmp_path / 'project' / 'lab.db'}"
    (tmp_path / "project").mkdir()
    script = Notebook(
        Settings(url=url, home=str(tmp_path / "script-home"), system_metrics_interval=0)
    )
    try:
        with script.start("pictures") as run:
            picture = run.image(np.zeros((4, 4), np.uint8), "zeros")
    finally:
        script.close()
    expected = tmp_path / "project" / "artifacts"
    assert script.settings.artifacts_path == expected

    config = ServerConfig.from_env(
        {"LABNOTEBOOK_HOME": str(tmp_path / "server-home")}, store=url
    )
    assert config.artifacts_path == expected
    assert ServerConfig(store=url).artifacts_path == expected
    app = create_app(config)
    try:
        served = app.test_client().get(f"/api/v1/runs/{run.id}/blobs/{picture.sha256}")
        assert served.status_code == 200
        assert served.mimetype == "image/png"
    finally:
        app.extensions["labnotebook"].store.close()


def test_other_stores_keep_artifacts_in_the_home_folder(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for url in ("postgresql://u@h/db", "http://server:8788", "sqlite://"):
        assert Settings(url=url, home=str(home)).artifacts_path == home / "artifacts"
    given = Settings(url="sqlite:///x.db", artifacts=str(tmp_path / "a"))
    assert given.artifacts_path == tmp_path / "a"
