"""``endopat serve``: a Label Studio ML backend over a checkpoint (endopat.serve)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import List, Optional

import typer

from endopat.cli.app import app, echo
from endopat.errors import EndopatError


@app.command()
def serve(
    checkpoint: Path = typer.Argument(..., help="segmenter checkpoint (.pt; .onnx serves without retraining)"),
    labeled: Optional[Path] = typer.Option(None, "--labeled", help="labeled folder annotations are imported into "
                                           "(and its images may be read); without it the server does not learn"),
    unlabeled: List[Path] = typer.Option([], "--unlabeled", help="folder of frames tasks may point to (repeatable)"),
    image_root: List[Path] = typer.Option([], "--image-root", help="another folder tasks' images may be read from"),
    state: Path = typer.Option(Path("runs/serve"), "--state", help="the server's folder: the served model's "
                               "version, trainings, fetched images"),
    host: str = typer.Option("127.0.0.1", help="address to listen on (0.0.0.0: every interface; add --token)"),
    port: int = typer.Option(9090),
    label_studio_url: Optional[str] = typer.Option(None, "--label-studio-url", envvar="LABEL_STUDIO_URL",
                                                   help="fetch uploaded task images from this Label Studio"),
    label_studio_token: Optional[str] = typer.Option(None, "--label-studio-token", envvar="LABEL_STUDIO_API_KEY",
                                                     help="its API token"),
    init: Optional[Path] = typer.Option(None, "--init", help="what a retraining starts from (default: CHECKPOINT), "
                                        "e.g. a PAT generator"),
    retrain_every: int = typer.Option(0, "--retrain-every", min=0, help="retrain after this many new masks (0: only "
                                      "on START_TRAINING)"),
    epochs: int = typer.Option(30, min=1, help="epochs of a retraining"),
    push: int = typer.Option(0, "--push", min=0, help="after a retrained model is swapped in, suggest this many "
                             "frames of the first --unlabeled source with it and push them as new tasks"),
    label: List[str] = typer.Option([], "--label", help="VALUE=CLASS: a labeling-config label for a model class"),
    token: Optional[str] = typer.Option(None, envvar="ENDOPAT_SERVE_TOKEN", help="require 'Authorization: Bearer "
                                        "TOKEN' (or 'Token TOKEN')"),
    basic_auth: Optional[str] = typer.Option(None, "--basic-auth", envvar="ENDOPAT_SERVE_BASIC_AUTH",
                                             help="USER:PASSWORD required (Label Studio's ML backend auth)"),
    max_image_pixels: int = typer.Option(40_000_000, min=1),
    backend: str = typer.Option("auto", help="auto, onnx or torch"),
) -> None:
    """Serve CHECKPOINT to Label Studio (ML backend: /health /setup /predict /webhook)."""
    from endopat.serve.app import build_server, create_app

    _check_listen(host, port)
    aliases = {}
    for item in label:
        if "=" not in item:
            raise EndopatError(f"--label '{item}': write VALUE=CLASS")
        k, v = item.split("=", 1)
        aliases[k.strip()] = v.strip()
    auth = None
    if basic_auth:
        if ":" not in basic_auth:
            raise EndopatError("--basic-auth: write USER:PASSWORD")
        auth = tuple(basic_auth.split(":", 1))
    server = build_server(checkpoint, state, labeled, unlabeled, image_root, label_studio_url, label_studio_token,
                          init, retrain_every, epochs, aliases, auth, token, max_image_pixels, backend, push, echo)
    import uvicorn  # the serve extra

    echo(f"serving {server.served.checkpoint} as {server.served.model_version} on http://{host}:{port} "
         f"(Label Studio: Settings > Model > Connect model, URL http://{host}:{port})")
    if host not in ("127.0.0.1", "localhost", "::1") and not (token or auth):
        echo("warning: listening beyond this machine without --token or --basic-auth")
    uvicorn.run(create_app(server), host=host, port=port, log_level="warning")


def _check_listen(host: str, port: int) -> None:
    """One line, before the checkpoint is read or the state folder made, when the server could not
    listen: a port out of range, one in use, a host that is not this machine's."""
    if not 0 <= port <= 65535:
        raise EndopatError(f"--port {port}: a TCP port is 0 to 65535")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            probe.bind((host, port))
        except OSError as err:
            raise EndopatError(f"--host {host} --port {port}: cannot listen there ({err.strerror or err})") from None
