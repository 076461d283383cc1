"""The web server: a Starlette app over a `Workspace`, served by uvicorn on 127.0.0.1.

The page (``static/``: plain HTML, JavaScript and CSS, nothing fetched from the internet) talks
to a small JSON API; every song-changing call names its session id, so two browser tabs on two
songs never share state. Errors come back as ``{"error": "one line"}`` with a 4xx status for what
the user can fix (a refused path, a value out of range, an unreadable file) and 500 for a failure
inside a render; the server keeps running either way.

The web server's libraries (the ``web`` extra: starlette, uvicorn) are imported here only, so the
rest of plugin-bridge runs without them.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
from pathlib import Path

from ..errors import PluginBridgeError
from ..ml.preference import Profile
from ..pipeline import load_song
from ..version import __version__
from .batches import batch_jobs, find_batches
from .readouts import wav_bytes, waveform
from .safety import (
    AccessError,
    Limits,
    check_audio_name,
    check_duration,
    check_session_id,
    list_audio,
    resolve_under,
)
from .stems_view import stem_folders
from .workspace import SongSession, Workspace, controls

try:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles
except ImportError as e:  # pragma: no cover - depends on the installed extras
    raise PluginBridgeError(
        f"the web app needs the 'web' extra (pip install 'plugin-bridge[web]'): {e.name} is missing"
    ) from None

STATIC = Path(__file__).resolve().parent / "static"
log = logging.getLogger(__name__)
_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
#: Files under the root the page may fetch (`/api/file`): mixes, reports and exports.
SERVED_SUFFIXES = (
    ".wav",
    ".flac",
    ".html",
    ".csv",
    ".json",
    ".md",
    ".rpp",
    ".rfxchain",
    ".mid",
    ".py",
    ".txt",
    ".vstpreset",
    ".fxp",
)


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _error(e: BaseException) -> JSONResponse:
    if isinstance(e, AccessError):
        status = 413 if "larger than" in str(e) else 403
        return JSONResponse({"error": _one_line(e)}, status_code=status)
    if isinstance(e, PluginBridgeError):
        return JSONResponse({"error": _one_line(e)}, status_code=422)
    log.exception("request failed")
    return JSONResponse({"error": f"failed: {type(e).__name__}: {_one_line(e)}"}, status_code=500)


async def _json_body(request: Request) -> dict:
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise AccessError("the request body must be a JSON object") from None
    if not isinstance(data, dict):
        raise AccessError("the request body must be a JSON object")
    return data


def create_app(workspace: Workspace, allowed_hosts: tuple[str, ...] | None = _LOCAL_HOSTS) -> Starlette:
    """The Starlette app serving the page and the API over ``workspace``. ``allowed_hosts`` are the
    Host headers accepted (None: any; a local server refuses others, against DNS rebinding)."""
    ws = workspace

    def session_of(request: Request) -> SongSession:
        return ws.get(check_session_id(request.path_params["sid"]))

    def api(handler):
        """Wrap a handler so that any error becomes a one-line JSON answer."""

        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as e:  # noqa: BLE001 - every failure answers, the server stays up
                return _error(e)

        return endpoint

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def info(request: Request) -> Response:
        return JSONResponse(
            {
                "version": __version__,
                "root": str(ws.root),
                "model": ws.model,
                "backend": ws.backend,
                "profile": ws.profile.name,
                "limits": {
                    "max_upload_mb": ws.limits.max_upload_bytes / 1e6,
                    "max_duration_min": ws.limits.max_duration_s / 60,
                    "max_loop_s": ws.limits.max_loop_s,
                },
            }
        )

    async def files(request: Request) -> Response:
        return JSONResponse({"files": await run_in_threadpool(list_audio, ws.root)})

    async def open_song(request: Request) -> Response:
        rel = (await _json_body(request)).get("path")
        path = resolve_under(ws.root, rel)  # type: ignore[arg-type]
        if not path.is_file():
            raise AccessError(f"{rel!r}: no such file in the served folder")
        s = await run_in_threadpool(ws.open_path, path, str(rel))
        return JSONResponse(s.state())

    async def upload(request: Request) -> Response:
        name = request.query_params.get("name", "")
        check_audio_name(name)
        # the body is read to its end even when it is too large (kept no further than the limit),
        # so that the client is still listening when the one-line refusal comes back
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size <= ws.limits.max_upload_bytes:
                chunks.append(chunk)
            elif chunks:
                chunks.clear()
        if size > ws.limits.max_upload_bytes:
            raise AccessError(
                f"{name}: the upload is larger than this server takes ({ws.limits.max_upload_bytes / 1e6:g} MB)"
            )
        path = await run_in_threadpool(ws.save_upload, name, chunks)
        try:
            s = await run_in_threadpool(ws.open_path, path, name)
        except PluginBridgeError:
            path.unlink(missing_ok=True)  # nothing kept of a refused upload
            raise
        return JSONResponse(s.state())

    def locked(fn):
        """A session handler run in a worker thread under the session's lock."""

        async def handler(request: Request) -> Response:
            s = session_of(request)
            body = (
                await _json_body(request)
                if request.method in ("PUT", "POST") and await request.body()
                else {}
            )

            def run():
                with s.lock:
                    return fn(s, body)

            return await run_in_threadpool(run)

        return handler

    def state(s: SongSession, body: dict) -> Response:
        return JSONResponse(s.state())

    def set_values(s: SongSession, body: dict) -> Response:
        values = body.get("values")
        if not isinstance(values, dict):
            raise AccessError('send {"values": {"parameter": number, ...}}')
        s.set_values(values)
        return JSONResponse(s.state())

    def undo(s: SongSession, body: dict) -> Response:
        s.undo()
        return JSONResponse(s.state())

    def reset(s: SongSession, body: dict) -> Response:
        s.reset()
        return JSONResponse(s.state())

    def loop(s: SongSession, body: dict) -> Response:
        s.set_loop(body.get("start_s"), body.get("end_s"), ws.limits)  # type: ignore[arg-type]
        return JSONResponse(s.state())

    def reference(s: SongSession, body: dict) -> Response:
        from_ = body.get("path")
        if from_ in (None, ""):
            s.reference = None
        else:
            path = resolve_under(ws.root, from_)
            check_audio_name(path.name)
            check_duration(path, ws.limits, str(from_))
            audio, sr = load_song(path)
            s.reference = (audio, sr, str(from_))
        s.measure_sources()
        return JSONResponse(s.state())

    def render(s: SongSession, body: dict) -> Response:
        ws.full_render(s)
        return JSONResponse(s.state())

    def accept(s: SongSession, body: dict) -> Response:
        ws.accept(s)
        return JSONResponse(s.state())

    def controls_of(s: SongSession, body: dict) -> Response:
        return JSONResponse({"controls": controls(s.choice, s.ai_values)})

    def waveform_of(s: SongSession, body: dict) -> Response:
        return JSONResponse({"duration_s": s.duration_s, "peaks": waveform(s.audio)})

    def audio(s: SongSession, body: dict, which: str) -> Response:
        if which == "a":
            data, sr = s.loop_audio(), s.sample_rate
        elif which == "b":
            data, sr = s.preview, s.sample_rate
        elif which == "ref" and s.reference is not None:
            data, sr = s.reference_audio(), s.reference[1]
        else:
            raise AccessError(f"no version {which!r} (a, b or ref after choosing a reference)")
        return Response(wav_bytes(data, sr), media_type="audio/wav", headers={"Cache-Control": "no-store"})

    async def audio_endpoint(request: Request) -> Response:
        s = session_of(request)
        which = request.path_params["which"]

        def run():
            with s.lock:
                return audio(s, {}, which)

        return await run_in_threadpool(run)

    async def download(request: Request) -> Response:
        s = session_of(request)
        rel = request.path_params["path"]
        if rel == "render.wav":
            path = resolve_under(s.folder, rel)
        else:
            folder = rel.split("/", 1)[0]
            if folder not in {a["folder"] for a in s.accepted}:
                raise AccessError("no such accepted mix in this session")
            path = resolve_under(ws.folder / "accepted", rel)
        if not path.is_file():
            raise AccessError("no such file")
        return FileResponse(path, filename=path.name)

    async def profile(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(ws.profile.summary))

    async def stem_folder_list(request: Request) -> Response:
        return JSONResponse({"folders": await run_in_threadpool(stem_folders, ws.root)})

    async def open_stems(request: Request) -> Response:
        rel = (await _json_body(request)).get("path")
        path = resolve_under(ws.root, rel)  # type: ignore[arg-type]
        if not path.is_dir():
            raise AccessError(f"{rel!r}: no such folder in the served folder")
        v = await run_in_threadpool(ws.open_stems, path, str(rel))
        return JSONResponse(v.state())

    def stems_call(fn):
        """A stems-view handler run in a worker thread under the view's lock."""

        async def handler(request: Request) -> Response:
            v = ws.get_stems(check_session_id(request.path_params["sid"]))
            body = (
                await _json_body(request)
                if request.method in ("PUT", "POST") and await request.body()
                else {}
            )

            def run():
                with v.lock:
                    return fn(v, body)

            return await run_in_threadpool(run)

        return handler

    def stems_state(v, body) -> Response:
        return JSONResponse(v.state())

    def stems_tracks(v, body) -> Response:
        v.set_tracks(body.get("tracks") or {})
        return JSONResponse(v.state())

    def stems_undo(v, body) -> Response:
        if not v.undo():
            raise AccessError("nothing to undo")
        return JSONResponse(v.state())

    def stems_reset(v, body) -> Response:
        v.reset()
        return JSONResponse(v.state())

    def stems_accept(v, body) -> Response:
        entry = v.accept(ws.folder / "accepted")
        return JSONResponse({**v.state(), "just_accepted": entry})

    async def stems_audio(request: Request) -> Response:
        v = ws.get_stems(check_session_id(request.path_params["sid"]))
        which = request.path_params["which"]
        if which not in ("a", "b"):
            raise AccessError(f"no version {which!r} (a: the stems as given, b: the mix)")
        with v.lock:
            data = v.audio[which]
        return Response(
            wav_bytes(data, v.sample_rate), media_type="audio/wav", headers={"Cache-Control": "no-store"}
        )

    async def stems_download(request: Request) -> Response:
        v = ws.get_stems(check_session_id(request.path_params["sid"]))
        rel = request.path_params["path"]
        if rel.split("/", 1)[0] not in {a["folder"] for a in v.accepted}:
            raise AccessError("no such accepted mix in this session")
        path = resolve_under(ws.folder / "accepted", rel)
        if not path.is_file():
            raise AccessError("no such file")
        return FileResponse(path, filename=path.name)

    async def batches(request: Request) -> Response:
        return JSONResponse({"batches": await run_in_threadpool(find_batches, ws.root)})

    async def batch(request: Request) -> Response:
        rel = request.query_params.get("path", "")
        return JSONResponse(await run_in_threadpool(batch_jobs, ws.root, rel))

    async def root_file(request: Request) -> Response:
        rel = request.query_params.get("path", "")
        path = resolve_under(ws.root, rel)
        if not path.is_file():
            raise AccessError(f"{rel!r}: no such file in the served folder")
        if path.suffix.lower() not in SERVED_SUFFIXES:
            raise AccessError(f"{rel!r}: only mixes, reports and exports are served")
        if path.suffix.lower() == ".html":  # a batch report: shown, not downloaded
            return FileResponse(path, media_type="text/html", headers={"Cache-Control": "no-store"})
        return FileResponse(path, filename=path.name)

    routes = [
        Route("/", index),
        Route("/api/info", api(info)),
        Route("/api/files", api(files)),
        Route("/api/profile", api(profile)),
        Route("/api/batches", api(batches)),
        Route("/api/stem-folders", api(stem_folder_list)),
        Route("/api/stems/open", api(open_stems), methods=["POST"]),
        Route("/api/stems/{sid}", api(stems_call(stems_state))),
        Route("/api/stems/{sid}/tracks", api(stems_call(stems_tracks)), methods=["PUT"]),
        Route("/api/stems/{sid}/undo", api(stems_call(stems_undo)), methods=["POST"]),
        Route("/api/stems/{sid}/reset", api(stems_call(stems_reset)), methods=["POST"]),
        Route("/api/stems/{sid}/accept", api(stems_call(stems_accept)), methods=["POST"]),
        Route("/api/stems/{sid}/audio/{which}", api(stems_audio)),
        Route("/api/stems/{sid}/download/{path:path}", api(stems_download)),
        Route("/api/batch", api(batch)),
        Route("/api/file", api(root_file)),
        Route("/api/open", api(open_song), methods=["POST"]),
        Route("/api/upload", api(upload), methods=["POST"]),
        Route("/api/s/{sid}", api(locked(state))),
        Route("/api/s/{sid}/waveform", api(locked(waveform_of))),
        Route("/api/s/{sid}/controls", api(locked(controls_of))),
        Route("/api/s/{sid}/values", api(locked(set_values)), methods=["PUT"]),
        Route("/api/s/{sid}/undo", api(locked(undo)), methods=["POST"]),
        Route("/api/s/{sid}/reset", api(locked(reset)), methods=["POST"]),
        Route("/api/s/{sid}/loop", api(locked(loop)), methods=["POST"]),
        Route("/api/s/{sid}/reference", api(locked(reference)), methods=["POST"]),
        Route("/api/s/{sid}/render", api(locked(render)), methods=["POST"]),
        Route("/api/s/{sid}/accept", api(locked(accept)), methods=["POST"]),
        Route("/api/s/{sid}/audio/{which}", api(audio_endpoint)),
        Route("/api/s/{sid}/download/{path:path}", api(download)),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    middleware = (
        [Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))] if allowed_hosts else []
    )
    return Starlette(routes=routes, middleware=middleware)


def serve(
    root: str | Path,
    port: int = 8765,
    host: str = "127.0.0.1",
    profile: str = "default",
    workspace: str | Path | None = None,
    limits: Limits | None = None,
    model: str = "ensemble",
    backend: str = "auto",
) -> None:
    """Serve the web app for the songs under ``root`` on ``host``:``port`` (0 = any free port) until
    interrupted; prints the address. ``workspace`` (default: ``root/.plugin-bridge-web``) holds
    uploads, renders and accepted mixes; ``profile`` names the taste profile accepts go to."""
    root_p = Path(root).resolve()
    if not root_p.is_dir():
        raise AccessError(f"{root}: the folder to serve does not exist")
    ws_dir = Path(workspace) if workspace is not None else root_p / ".plugin-bridge-web"
    try:
        ws = Workspace(root_p, ws_dir, Profile(profile), limits, model, backend)
    except OSError as e:
        raise AccessError(
            f"{ws_dir}: cannot create the workspace ({e.strerror or e}); give --workspace DIR"
        ) from None
    local = host in _LOCAL_HOSTS
    app = create_app(ws, _LOCAL_HOSTS if local else None)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)  # connections made from now on wait for the server, none is refused
    except OSError as e:
        raise AccessError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    print(f"plugin-bridge web app: http://{shown}:{bound}/  (songs under {root_p}; Ctrl-C stops)", flush=True)
    if not local:
        print(
            f"WARNING: listening on {host}: anyone who can reach this machine can open and render the songs "
            f"under {root_p}",
            file=sys.stderr,
            flush=True,
        )
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])
