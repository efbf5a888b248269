"""``imgtrans serve``: translate over HTTP, with a web page (extra ``[serve]``)."""
from __future__ import annotations

import click

from ..util.terminal import rich_console
from .params import ALSO_ACCEPTED, INFERENCE_PRECISION, THREADS, apply_threads


@click.command("serve")
@click.option("--model", "-m", "models", multiple=True, required=True, metavar="[NAME=]MODEL",
              help="A .safetensors checkpoint or zoo:NAME (repeatable).  Served under NAME, else the zoo name, "
                   "the run's name for a run's model (runs/demo/model.safetensors: demo), or the file's stem.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on.  Anything but loopback needs --token.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port to listen on (0: any free port).")
@click.option("--token", envvar="IMGTRANS_SERVE_TOKEN", show_envvar=True,
              help="Require 'Authorization: Bearer TOKEN' on every /v1 call.")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when available, else CPU), cpu, "
              "cuda or cuda:N.")
@click.option("--precision", type=INFERENCE_PRECISION, default="auto", show_default=True,
              help=f"Arithmetic of the forward pass, as for translate. {ALSO_ACCEPTED}")
@click.option("--queue-size", type=click.IntRange(1), default=32, show_default=True,
              help="Translate requests inside the server at once (reading, waiting, translating); more are "
                   "answered 503 with Retry-After.")
@click.option("--batch-wait-ms", type=click.FloatRange(0), default=5.0, show_default=True,
              help="How long a request waits for others of the same size to share its forward pass.")
@click.option("--max-batch", type=click.IntRange(1),
              help="Most images per forward pass (1: one request at a time).  [default: as translate's "
                   "--batch-size auto, 8 of 256x256 on CPU]")
@click.option("--max-body-mb", type=click.FloatRange(0, min_open=True), default=32.0, show_default=True,
              help="Largest request body, in MiB; larger ones are answered 413.")
@click.option("--max-pixels", type=click.IntRange(1), default=1 << 24, show_default=True,
              help="Largest image (width x height), checked from its header before decoding; larger ones "
                   "(decompression bombs) are answered 413.")
@click.option("--body-timeout", type=click.FloatRange(0, min_open=True), default=30.0, show_default=True,
              help="Seconds a request body may take to arrive (received before the request takes a queue "
                   "slot); slower uploads are answered 408.")
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]),
              default="info", show_default=True, help="uvicorn's log level (info logs every request).")
@THREADS
def serve_command(models: tuple[str, ...], host: str, port: int, token: str | None, device: str, precision: str,
                  queue_size: int, batch_wait_ms: float, max_batch: int | None, max_body_mb: float, max_pixels: int,
                  body_timeout: float, log_level: str, threads: int | None) -> None:
    """Serve models over HTTP: a web page at /, the API under /v1, its description at /docs.

    \b
    GET  /healthz                                   200 once the models are loaded
    GET  /v1/models                                 names, domains, directions, channels (JSON)
    POST /v1/translate?model=NAME[&direction=BtoA]  body: an image file; answer: PNG, same size
    \b
    Results are the pixels `imgtrans translate` writes with the same model.  Requests that arrive
    together share forward passes (same-size images); when --queue-size requests are inside, the
    next gets 503 with Retry-After.  Binds 127.0.0.1 unless --host says otherwise, which needs
    --token.  Stop with Ctrl-C.

    \b
    Examples:
      imgtrans serve --model zoo:basemap_a2b     (open http://127.0.0.1:8000/)
      imgtrans serve --model demo=runs/demo/model.safetensors --port 0
      imgtrans serve --model zoo:basemap_a2b --host 0.0.0.0 --token "$TOKEN"
      curl --data-binary @tile.png -o out.png \\
        'http://127.0.0.1:8000/v1/translate?model=basemap_a2b'
    """
    from ..serve.server import bind, check_host, url
    from ..util.devices import resolve_device
    from ..util.errors import ImgtransError

    check_host(host, token)
    try:
        from ..serve.app import ServeSettings, create_app
    except ImportError as exc:
        raise ImgtransError(f"imgtrans serve needs the serve extra ({exc.name} is missing): "
                            "pip install 'imgtrans[serve]'") from None
    from ..serve.models import load_served
    from ..serve.server import run

    dev = resolve_device(device)
    apply_threads(threads, rich_console(stderr=True))
    sock = bind(host, port)
    try:
        served = load_served(models, device=dev, precision=precision)
        settings = ServeSettings(queue_size=queue_size, max_body=int(max_body_mb * 1024 * 1024),
                                 max_pixels=max_pixels, batch_wait_ms=batch_wait_ms, max_batch=max_batch,
                                 body_timeout=body_timeout)
        app = create_app(served, token=token, settings=settings)
        names = ", ".join(f"{m.name} ({'/'.join(m.directions)})" for m in served.values())
        click.echo(f"serving {names} at {url(sock)}/  (API: /v1, docs: /docs; Ctrl-C stops)", err=True)
        run(app, sock, log_level=log_level)
    finally:
        sock.close()
