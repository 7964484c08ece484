"""The FastAPI application of ``rnnkit serve``: versioned routes, limits, errors, the page.

Routes (``NAME`` is a served model's name, see ``GET /v1/models``):

    GET  /health, /ready                         liveness and readiness (no token needed)
    GET  /v1/models                              the served models, their apps and runtimes
    POST /v1/models/NAME/forecast                JSON history rows -> forecast with intervals
    POST /v1/models/NAME/forecast/file           uploaded CSV or Parquet -> the same
    POST /v1/models/NAME/detect                  a series -> flagged points
    POST /v1/models/NAME/classify                texts -> labels, probabilities, saliency
    POST /v1/models/NAME/generate                prompt -> text, streamed token by token
    POST /v1/models/NAME/translate               sentences -> translations
    POST /v1/models/NAME/transcribe              WAV upload -> transcript
    POST /v1/models/NAME/caption                 image or animated video -> caption, attention
    POST /v1/models/NAME/compose                 options -> MIDI and WAV
    GET  /v1/models/NAME/plot                    the experiment's vanishing-gradient plot
    GET  /                                       the web page (static files in the package)

Every error is JSON ``{"error": "<one line>"}``: 400 for a `UserError` (the CLI's message),
401 without the token, 404 for an unknown model or route, 413 over a size limit, 422 for
wrong fields, 503 past the request-time limit.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import re
import tempfile
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from rnnkit import __version__
from rnnkit.errors import UserError
from rnnkit.serve.batching import MicroBatcher, ModelWorker
from rnnkit.serve.models import Served
from rnnkit.serve.settings import Settings

STATIC = resources.files("rnnkit.serve") / "static"


class ApiError(Exception):
    """An error answered as ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


# ------------------------------------------------------------------------ request bodies


def _examples(*examples: dict) -> ConfigDict:
    return ConfigDict(extra="forbid", json_schema_extra={"examples": list(examples)})


class ForecastRequest(BaseModel):
    model_config = _examples(
        {
            "rows": [
                {"time": "2014-12-30 00:00", "y": 4.1},
                {"time": "2014-12-30 00:30", "y": 4.0},
            ],
            "horizon": 24,
        }
    )
    rows: list[dict[str, Any]] = Field(description="the history: time, target (and id) columns")
    horizon: int | None = Field(None, description="steps ahead (default: the trained horizon)")


class DetectRequest(BaseModel):
    model_config = _examples({"values": [0.1, 0.3, 0.2, 9.0, 0.2]})
    values: list[float] = Field(description="one series, oldest first")


class ClassifyRequest(BaseModel):
    model_config = _examples({"texts": ["A gorgeous, witty film.", "Dull."], "explain": True})
    texts: list[str]
    explain: bool = Field(False, description="also return each token's saliency")


class GenerateRequest(BaseModel):
    model_config = _examples({"prompt": "And God said", "max_tokens": 80, "temperature": 0.8})
    prompt: str = ""
    max_tokens: int = Field(200, ge=1)
    temperature: float = Field(1.0, ge=0)
    top_k: int | None = Field(None, ge=1)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = 0
    stream: bool = Field(True, description="text/plain streamed piece by piece, else JSON")


class TranslateRequest(BaseModel):
    model_config = _examples({"sentences": ["And God said, Let there be light."], "beam": 4})
    sentences: list[str]
    beam: int = Field(4, ge=1, le=16)


class ComposeRequest(BaseModel):
    model_config = _examples({"bars": 4, "temperature": 0.9, "key": "G", "seed": 1})
    bars: float = Field(4, gt=0)
    temperature: float = Field(1.0, ge=0)
    top_p: float | None = Field(None, gt=0, le=1)
    tempo_bpm: float | None = Field(None, gt=0)
    key: str | None = None
    seed: int = 0


# ---------------------------------------------------------------------------------- app


def create_app(models: dict[str, Served], settings: Settings | None = None) -> FastAPI:
    """The app serving ``models`` (loaded by `rnnkit.serve.models.load_models`)."""
    settings = settings or Settings()
    workers = {name: ModelWorker(name) for name in models}
    wait = settings.batch_wait_ms / 1000
    batchers = {
        name: MicroBatcher(
            getattr(served, served.batch_method), workers[name], settings.max_batch, wait
        )
        for name, served in models.items()
        if served.batch_method
    }

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        for worker in workers.values():
            worker.close()

    app = FastAPI(
        title="rnnkit",
        version=__version__,
        description="Recurrent neural networks served by `rnnkit serve`: one route per "
        'application; errors are `{"error": "<one line>"}`.',
        lifespan=lifespan,
    )
    app.state.models, app.state.settings, app.state.batchers = models, settings, batchers
    _add_error_handlers(app)
    app.add_middleware(BodyLimit, settings=settings)

    def authorized(request: Request) -> None:
        if settings.token is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), settings.token.encode()
        ):
            raise ApiError(401, "missing or wrong bearer token (Authorization: Bearer <token>)")

    def model(name: str, app_name: str) -> Served:
        served = models.get(name)
        if served is None:
            raise ApiError(404, f"no model named {name!r}; served: {', '.join(models)}")
        if served.app != app_name:
            raise ApiError(
                404, f"model {name!r} is a {served.app} model; this route is for {app_name} models"
            )
        return served

    async def timed(awaitable: Any) -> Any:
        try:
            return await asyncio.wait_for(awaitable, settings.request_timeout_s)
        except TimeoutError:
            raise ApiError(
                503,
                f"the request took longer than {settings.request_timeout_s:g} s "
                "(--request-timeout); try a smaller one",
            ) from None

    guarded = [Depends(authorized)]

    @app.get("/health", tags=["status"])
    async def health() -> dict:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready", tags=["status"])
    async def ready() -> dict:
        """Readiness: every model folder was loaded at start."""
        return {"ready": True, "models": len(models)}

    @app.get("/v1/models", tags=["models"], dependencies=guarded)
    async def list_models() -> dict:
        """The served models: name, application, runtime (torch or onnx) and settings."""
        return {"models": [served.info() for served in models.values()]}

    @app.post("/v1/models/{name}/forecast", tags=["forecast"], dependencies=guarded)
    async def forecast(name: str, body: ForecastRequest) -> dict:
        """Forecast the steps after the history given as JSON rows (columns as trained)."""
        served = model(name, "forecast")
        data = await timed(workers[name].run(served.read_rows, body.rows))
        return await timed(workers[name].run(served.forecast, data, body.horizon))

    @app.post("/v1/models/{name}/forecast/file", tags=["forecast"], dependencies=guarded)
    async def forecast_file(
        name: str,
        file: Annotated[UploadFile, File(description="CSV or Parquet history")],
        horizon: Annotated[int | None, Form()] = None,
    ) -> dict:
        """Forecast from an uploaded CSV or Parquet file (as `rnnkit forecast predict --file`)."""
        served = model(name, "forecast")
        async with uploaded(file, settings) as path:
            data = await timed(workers[name].run(served.read_file, path))
        return await timed(workers[name].run(served.forecast, data, horizon))

    @app.post("/v1/models/{name}/detect", tags=["anomaly"], dependencies=guarded)
    async def detect(name: str, body: DetectRequest) -> dict:
        """Score a series and flag its anomalous points (no labels needed)."""
        served = model(name, "anomaly")
        return await timed(workers[name].run(served.detect, body.values))

    @app.post("/v1/models/{name}/classify", tags=["sentiment"], dependencies=guarded)
    async def classify(name: str, body: ClassifyRequest) -> dict:
        """Label and probabilities of each text; with ``explain``, each token's saliency."""
        served = model(name, "sentiment")
        served.check_items(body.texts, "texts")
        for number, text in enumerate(body.texts, start=1):
            served.check_text(text, "text", number)
            if not text.strip():
                raise UserError(f"text {number}: empty text; expected some words to classify")
        results = await timed(asyncio.gather(*(batchers[name].submit(t) for t in body.texts)))
        if body.explain:
            for result in results:
                result["saliency"] = await timed(
                    workers[name].run(served.saliency, result["text"], grad=True)
                )
        return {"predictions": results}

    @app.post("/v1/models/{name}/generate", tags=["lm"], dependencies=guarded)
    async def generate(name: str, body: GenerateRequest) -> Any:
        """Continue the prompt; streamed as plain text, piece by piece, as it is sampled."""
        served = model(name, "lm")
        if body.max_tokens > settings.max_new_tokens:
            raise UserError(
                f"max_tokens {body.max_tokens}: at most {settings.max_new_tokens} "
                "(--max-new-tokens)"
            )
        await timed(workers[name].run(served.check_prompt, body.prompt))
        sampling = dict(
            temperature=body.temperature, top_k=body.top_k, top_p=body.top_p, seed=body.seed
        )
        pieces = stream_pieces(
            workers[name], served.stream, body.prompt, body.max_tokens, sampling, settings
        )
        if body.stream:
            return StreamingResponse(pieces, media_type="text/plain; charset=utf-8")
        return {"prompt": body.prompt, "text": "".join([piece async for piece in pieces])}

    @app.post("/v1/models/{name}/translate", tags=["translate"], dependencies=guarded)
    async def translate(name: str, body: TranslateRequest) -> dict:
        """Translate sentences (beam search; ``beam`` 1 is greedy)."""
        served = model(name, "translate")
        served.check_items(body.sentences, "sentences")
        for number, sentence in enumerate(body.sentences, start=1):
            served.check_text(sentence, "sentence", number)
        items = [(sentence, body.beam) for sentence in body.sentences]
        outputs = await timed(asyncio.gather(*(batchers[name].submit(i) for i in items)))
        return {"translations": outputs}

    @app.post("/v1/models/{name}/transcribe", tags=["speech"], dependencies=guarded)
    async def transcribe(
        name: str,
        file: Annotated[UploadFile, File(description="a WAV (or FLAC/OGG) recording")],
        beam: Annotated[int, Form(ge=1, le=32)] = 8,
        words: Annotated[
            str | None,
            Form(description="a word grammar: 'digits' or a comma-separated list of words"),
        ] = None,
        one_word: Annotated[bool, Form(description="with words: exactly one word")] = False,
    ) -> dict:
        """The transcript of an uploaded recording (any rate; stereo is mixed down)."""
        served = model(name, "speech")
        async with uploaded(file, settings) as path:
            return await timed(workers[name].run(served.transcribe, path, beam, words, one_word))

    @app.post("/v1/models/{name}/caption", tags=["caption"], dependencies=guarded)
    async def caption(
        name: str,
        file: Annotated[UploadFile, File(description="an image, or an animated GIF/PNG/WebP")],
        beam: Annotated[int, Form(ge=1, le=16)] = 3,
    ) -> dict:
        """Caption of an image or short video, with the attention map of each word."""
        served = model(name, "caption")
        async with uploaded(file, settings) as path:
            return await timed(workers[name].run(served.caption, path, beam))

    @app.post("/v1/models/{name}/compose", tags=["music"], dependencies=guarded)
    async def compose(name: str, body: ComposeRequest) -> dict:
        """Compose a piece: MIDI and (with fluidsynth) WAV, base64-encoded."""
        served = model(name, "music")
        compose = functools.partial(served.compose, **body.model_dump())
        return await timed(workers[name].run(compose))

    @app.get("/v1/models/{name}/plot", tags=["experiment"], dependencies=guarded)
    async def plot(name: str) -> FileResponse:
        """The experiment's plot of the gradient norm against the distance from the loss."""
        served = model(name, "experiment")
        return FileResponse(served.model, media_type="image/png")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"), media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return app


async def stream_pieces(
    worker: ModelWorker,
    stream: Any,
    prompt: str,
    max_tokens: int,
    sampling: dict,
    settings: Settings,
):
    """The language model's pieces as they are sampled on its worker thread.

    The thread puts each piece on a queue read here; when the client goes away (the response
    is closed) or the time limit passes, a flag stops the thread at its next token.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    stop = {"now": False}
    done = object()

    def produce() -> None:
        try:
            for piece in stream(prompt, max_tokens, **sampling):
                if stop["now"]:
                    break
                loop.call_soon_threadsafe(queue.put_nowait, piece)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, done)

    worker.submit(produce)
    deadline = loop.time() + settings.request_timeout_s
    try:
        while True:
            piece = await asyncio.wait_for(queue.get(), max(0.0, deadline - loop.time()))
            if piece is done:
                return
            yield piece
    except TimeoutError:
        return  # the text so far is what the client gets
    finally:
        stop["now"] = True


@asynccontextmanager
async def uploaded(file: UploadFile, settings: Settings):
    """The upload saved to a temporary folder under its own (sanitized) name, for the app's
    file readers; errors name the file as the client called it, never the temporary path."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(file.filename or "upload").name) or "upload"
    name = name.lstrip(".") or "upload"
    data = await file.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise ApiError(413, f"{name}: over the upload limit of {settings.max_upload_bytes:,} bytes")
    if not data:
        raise UserError(f"{name}: empty upload (0 bytes)")
    with tempfile.TemporaryDirectory(prefix="rnnkit-serve-") as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        try:
            yield path
        except UserError as error:
            raise UserError(str(error).replace(f"{folder}/", "")) from None


# ------------------------------------------------------------------------------ errors


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    """Refuse request bodies over the limit (JSON: ``max_body_bytes``; multipart uploads:
    ``max_upload_bytes``) before they are read, by Content-Length or by counting."""

    def __init__(self, app: Any, settings: Settings):
        self.app, self.settings = app, settings

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        multipart = headers.get(b"content-type", b"").startswith(b"multipart/")
        limit = self.settings.max_upload_bytes if multipart else self.settings.max_body_bytes
        what = "upload" if multipart else "request body"
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            response = JSONResponse(
                {"error": f"{what} of {int(length):,} bytes is over the limit of {limit:,}"},
                status_code=413,
            )
            return await response(scope, receive, send)
        seen = 0

        async def counted() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise ApiError(413, f"{what} is over the limit of {limit:,} bytes")
            return message

        return await self.app(scope, counted, send)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(UserError)
    async def user_error(request: Request, error: UserError) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=400)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return JSONResponse({"error": error.message}, status_code=error.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": _validation_message(error)}, status_code=422)

    @app.exception_handler(Exception)
    async def bug(request: Request, error: Exception) -> JSONResponse:
        # A bug in rnnkit, not the request's fault: one line for the client, the traceback
        # in the server's log (Starlette prints it), and the server keeps serving.
        first = str(error).splitlines()[0] if str(error) else ""
        message = f"internal error ({type(error).__name__}: {first})"
        return JSONResponse({"error": message}, status_code=500)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        message = error.detail if isinstance(error.detail, str) else str(error.detail)
        if error.status_code == 404:
            message = f"no route {request.url.path}; see /openapi.json for the routes"
        return JSONResponse({"error": message}, status_code=error.status_code)


def _validation_message(error: RequestValidationError) -> str:
    """The first problem of a request, in one line: ``field 'texts': Field required``."""
    problems = error.errors()
    if not problems:
        return "invalid request"
    first = problems[0]
    where = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")]
    field = ".".join(where) or "body"
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"field '{field}': {first.get('msg', 'invalid')}{more}"
