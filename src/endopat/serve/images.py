"""A task's image: read from disk when it lies under an allowed root, or fetched from Label Studio
with its token. Nothing else is read or fetched: a path outside the roots, a URL of another host, a
missing file or an image over the size limit is a :class:`RequestError` with its HTTP status."""

from __future__ import annotations

import io
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urljoin, urlparse

import numpy as np
from PIL import Image

from endopat.annotation.label_studio import image_name
from endopat.errors import EndopatError, reading


class RequestError(Exception):
    """A bad request: ``status`` (4xx) and a one-line message Label Studio shows."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class ImageSource:
    roots: list[Path]
    label_studio_url: str | None = None
    token: str | None = None
    max_pixels: int = 40_000_000
    timeout: float = 30.0

    def task_image(self, task: dict) -> tuple[str, bytes]:
        """(the image's file name, its bytes) for a Label Studio task."""
        data = task.get("data") if isinstance(task, dict) else None
        if not isinstance(data, dict):
            raise RequestError(400, "a task needs a 'data' object")
        value = data.get("image") or next((v for v in data.values() if isinstance(v, str)), None)
        if not isinstance(value, str) or not value:
            raise RequestError(400, f"task {task.get('id')}: no image in its data")
        url = urlparse(value)
        if url.path.startswith("/data/local-files/") and "d" in parse_qs(url.query):
            return self._local(image_name(task))  # the file Label Studio serves (import's reading of it)
        if url.scheme in ("http", "https") or value.startswith("/data/"):
            return self._fetch(value)
        return self._local(value)

    def adopt(self, hostname: object, token: object) -> None:
        """Take the Label Studio address and token that /setup names, when the server was started
        without ``--label-studio-url`` and the address is this machine's (no other host is ever
        fetched from on a request's word)."""
        if self.label_studio_url or not isinstance(hostname, str) or not isinstance(token, str):
            return
        if urlparse(hostname).hostname in ("localhost", "127.0.0.1", "::1"):
            self.label_studio_url, self.token = hostname, token

    def _local(self, name: str) -> tuple[str, bytes]:
        path = Path(name)
        candidates = [path] if path.is_absolute() else [root / path for root in self.roots]
        for p in candidates:
            p = p.resolve()
            if not any(p.is_relative_to(root.resolve()) for root in self.roots):
                raise RequestError(403, f"{name}: outside the folders this server may read "
                                        f"({', '.join(str(r) for r in self.roots)}; --image-root adds one)")
            if p.is_file():
                return p.name, p.read_bytes()
        raise RequestError(404, f"{name}: no such image under {', '.join(str(r) for r in self.roots)}")

    def _fetch(self, value: str) -> tuple[str, bytes]:
        if not self.label_studio_url:
            raise RequestError(400, f"{value}: a Label Studio URL, but the server was started without "
                                    "--label-studio-url to fetch it from")
        url = urljoin(self.label_studio_url.rstrip("/") + "/", value.lstrip("/")) if value.startswith("/") else value
        if urlparse(url).netloc != urlparse(self.label_studio_url).netloc:
            raise RequestError(403, f"{value}: not on {self.label_studio_url}; only Label Studio's own files are fetched")

        request = urllib.request.Request(url, headers={"Authorization": f"Token {self.token}"} if self.token else {})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - host checked above
                body = response.read(self.max_pixels * 4 + 1)
        except OSError as err:
            raise RequestError(404, f"{url}: could not fetch it from Label Studio ({err})") from None
        return unquote(urlparse(url).path).rsplit("/", 1)[-1], body

    def upload(self, project: int, files: list[Path]) -> None:
        """Upload image files to a Label Studio project as new tasks (its import API, multipart)."""
        boundary = uuid.uuid4().hex
        parts = []
        for k, f in enumerate(files):
            parts += [f"--{boundary}\r\nContent-Disposition: form-data; name=\"file{k}\"; filename=\"{f.name}\"\r\n"
                      "Content-Type: image/png\r\n\r\n".encode(), f.read_bytes(), b"\r\n"]
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        url = f"{self.label_studio_url.rstrip('/')}/api/projects/{int(project)}/import"
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        if self.token:
            headers["Authorization"] = f"Token {self.token}"
        try:
            with urllib.request.urlopen(urllib.request.Request(url, body, headers), timeout=self.timeout):  # noqa: S310
                pass
        except OSError as err:
            raise RequestError(502, f"{url}: Label Studio refused the upload ({err})") from None

    def decode(self, name: str, data: bytes) -> np.ndarray:
        """RGB uint8 pixels of an image's bytes; too large or unreadable is a 413 / 400."""
        try:
            with reading(name, "image"):
                im = Image.open(io.BytesIO(data))
                size = im.size
            if size[0] * size[1] > self.max_pixels:
                raise RequestError(413, f"{name}: {size[0]}x{size[1]} is over the server's limit of "
                                        f"{self.max_pixels} pixels (--max-image-pixels)")
            with reading(name, "image"), im:
                return np.asarray(im.convert("RGB"))
        except EndopatError as err:
            raise RequestError(400, str(err)) from None
