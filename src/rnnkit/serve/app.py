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
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from rnnkit import __version__
from rnnkit.errors import UserError
from rnnkit.serve.batching import MicroBatcher, ModelWorker
from rnnkit.serve.models import OverLimit, Served
from rnnkit.serve.settings import Settings

STATIC = resources.files("rnnkit.serve") / "static"


class ApiError(Exception):
    """An error answered as ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


# ------------------------------------------------------------------------ request bodies


def _examples(*examples: dict, allow_nan: bool = False) -> ConfigDict:
    # strict: "10" is not a number nor "yes" a boolean; Infinity and NaN (which Python's JSON
    # reader accepts) are refused where they mean nothing, naming the field.
    return ConfigDict(
        extra="forbid",
        strict=True,
        allow_inf_nan=allow_nan,
        json_schema_extra={"examples": list(examples)},
    )


# torch generators take seeds below 2**64; JSON numbers can be any size.
MAX_SEED = 2**63 - 1
# Below this, logits / temperature overflow float32 and sampling fails; 0 is greedy, as in
# the CLI's --temperature 0.
MIN_TEMPERATURE = 1e-3


def _sampling_temperature(value: float) -> float:
    if 0 < value < MIN_TEMPERATURE:
        raise ValueError(f"expected 0 (greedy) or at least {MIN_TEMPERATURE:g}, got {value:g}")
    return value


Seed = Annotated[int, Field(ge=0, le=MAX_SEED, description=f"0 to {MAX_SEED}")]
Temperature = Annotated[
    float, Field(ge=0, description="0: greedy"), AfterValidator(_sampling_temperature)
]


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
    rows: list[dict[str, Any]] = Field(
        description="the history: time, target (and series id) columns, as trained"
    )
    horizon: int | None = Field(None, description="steps ahead (default: the trained horizon)")
    future: list[dict[str, Any]] | None = Field(
        None,
        description="known-future covariates for the trained horizon: time, series id (several "
        "series) and each covariate; only for models trained with them",
    )


class DetectRequest(BaseModel):
    # NaN is a missing value to the detector (null in JSON is not a float)
    model_config = _examples({"values": [0.1, 0.3, 0.2, 9.0, 0.2]}, allow_nan=True)
    values: list[float] = Field(description="one series, oldest first")


class ClassifyRequest(BaseModel):
    model_config = _examples({"texts": ["A gorgeous, witty film.", "Dull."], "explain": True})
    texts: list[str]
    explain: bool = Field(False, description="also return each token's saliency")


class GenerateRequest(BaseModel):
    model_config = _examples({"prompt": "And God said", "max_tokens": 80, "temperature": 0.8})
    prompt: str = ""
    max_tokens: int = Field(200, ge=1)
    temperature: Temperature = 1.0
    top_k: int | None = Field(None, ge=1)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: Seed | None = Field(0, description="null: a new sample every time")
    stream: bool = Field(True, description="text/plain streamed piece by piece, else JSON")


class TranslateRequest(BaseModel):
    model_config = _examples({"sentences": ["And God said, Let there be light."], "beam": 4})
    sentences: list[str]
    beam: int = Field(4, ge=1, le=16)


class ComposeRequest(BaseModel):
    model_config = _examples({"bars": 4, "temperature": 0.9, "key": "G", "seed": 1})
    bars: float = Field(4, gt=0)
    temperature: Temperature = 1.0
    top_p: float | None = Field(None, gt=0, le=1)
    tempo_bpm: float | None = Field(None, gt=0)
    key: str | None = None
    seed: Seed = 0


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
            raise ApiError(503, _timeout_message(settings)) from None

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
        future = await timed(workers[name].run(served.read_future, body.future, '"future" rows'))
        return await timed(workers[name].run(served.forecast, data, body.horizon, future))

    @app.post("/v1/models/{name}/forecast/file", tags=["forecast"], dependencies=guarded)
    async def forecast_file(
        name: str,
        file: Annotated[UploadFile, File(description="CSV or Parquet history")],
        horizon: Annotated[int | None, Form()] = None,
        future: Annotated[
            UploadFile | None,
            File(description="CSV or Parquet of known-future covariates (models with them)"),
        ] = None,
    ) -> dict:
        """Forecast from an uploaded CSV or Parquet file (as `rnnkit forecast predict --file`,
        ``future`` as its ``--future``)."""
        served = model(name, "forecast")
        async with uploaded(file, settings) as path:
            data = await timed(workers[name].run(served.read_file, path))
        if future is None:
            known = await timed(workers[name].run(served.read_future, None, "the future upload"))
        else:
            async with uploaded(future, settings) as path:
                known = await timed(workers[name].run(served.read_future, path, path.name))
        return await timed(workers[name].run(served.forecast, data, horizon, known))

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
        # The first piece before the response starts: a failure to sample at all is then a
        # JSON error with its status, not a 200 with no text.
        first = await anext(pieces, "")
        if body.stream:
            return StreamingResponse(
                with_error_line(first, pieces), media_type="text/plain; charset=utf-8"
            )
        return {"prompt": body.prompt, "text": first + "".join([p async for p in pieces])}

    @app.post("/v1/models/{name}/translate", tags=["translate"], dependencies=guarded)
    async def translate(name: str, body: TranslateRequest) -> dict:
        """Translate sentences (beam search; ``beam`` 1 is greedy)."""
        served = model(name, "translate")
        served.check_items(body.sentences, "sentences")
        for number, sentence in enumerate(body.sentences, start=1):
            served.check_text(sentence, "sentence", number)
            if not sentence.strip():  # as classify: an empty text is a mistake, not a request
                raise UserError(f"sentence {number}: empty; expected some words to translate")
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
        except Exception as error:  # re-raised below, in the request: never dropped
            loop.call_soon_threadsafe(queue.put_nowait, error)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, done)

    worker.submit(produce)
    deadline = loop.time() + settings.request_timeout_s
    started = False
    try:
        while True:
            piece = await asyncio.wait_for(queue.get(), max(0.0, deadline - loop.time()))
            if piece is done:
                return
            if isinstance(piece, Exception):
                raise piece
            started = True
            yield piece
    except TimeoutError:
        if not started:
            raise ApiError(503, _timeout_message(settings)) from None
        return  # the text so far is what the client gets
    finally:
        stop["now"] = True


async def with_error_line(first: str, pieces: Any):
    """``first`` and the rest of ``pieces``; a failure after the response has started (its
    200 status is sent) ends the text with one line ``[error: <message>]``."""
    yield first
    try:
        async for piece in pieces:
            yield piece
    except Exception as error:
        yield f"\n[error: {_one_line(error)}]\n"


def _one_line(error: Exception) -> str:
    if isinstance(error, ApiError):
        return error.message
    if isinstance(error, UserError):
        return str(error)
    first = str(error).splitlines()[0] if str(error) else ""
    return f"internal error ({type(error).__name__}: {first})"


def _timeout_message(settings: Settings) -> str:
    return (
        f"the request took longer than {settings.request_timeout_s:g} s "
        "(--request-timeout); try a smaller one"
    )


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
        except UserError as error:  # the same class: an over-limit error stays a 413
            raise type(error)(str(error).replace(f"{folder}/", "")) from None


# ------------------------------------------------------------------------------ errors


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    """Refuse request bodies over the limit (JSON: ``max_body_bytes``; multipart uploads:
    ``max_upload_bytes``) before they are read, by Content-Length or, for chunked bodies, by
    counting: FastAPI answers an error raised while it reads a body with its own 400, so that
    response is replaced by the 413 here."""

    def __init__(self, app: Any, settings: Settings):
        self.app, self.settings = app, settings

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        # media types are case-insensitive (RFC 9110): "Multipart/form-data" is an upload
        multipart = headers.get(b"content-type", b"").lower().startswith(b"multipart/")
        limit = self.settings.max_upload_bytes if multipart else self.settings.max_body_bytes
        what = "upload" if multipart else "request body"
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            message = f"{what} of {int(length):,} bytes is over the limit of {limit:,}"
            return await _too_large(message, scope, receive, send)
        seen, over, started = 0, False, False

        async def counted() -> dict:
            nonlocal seen, over
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                over = True
                raise BodyTooLarge
            return message

        async def replaced(message: dict) -> None:
            nonlocal started
            if over:
                return  # the app's answer to the interrupted body; the 413 goes instead
            started = True
            await send(message)

        try:
            await self.app(scope, counted, replaced)
        except Exception:
            if not over:  # whatever the app made of the interrupted body, it was ours
                raise
        if over and not started:
            await _too_large(f"{what} is over the limit of {limit:,} bytes", scope, receive, send)


async def _too_large(message: str, scope: dict, receive: Any, send: Any) -> None:
    await JSONResponse({"error": message}, status_code=413)(scope, receive, send)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(UserError)
    async def user_error(request: Request, error: UserError) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=400)

    @app.exception_handler(OverLimit)
    async def over_limit(request: Request, error: OverLimit) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=413)

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
        return JSONResponse({"error": _one_line(error)}, status_code=500)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        message = error.detail if isinstance(error.detail, str) else str(error.detail)
        if isinstance(error.__cause__, UnicodeDecodeError):  # FastAPI's "error parsing the body"
            cause = error.__cause__
            message = f"the request body is not UTF-8 (byte {cause.start}); send JSON in UTF-8"
        if error.status_code == 404:
            message = f"no route {request.url.path}; see /openapi.json for the routes"
        return JSONResponse({"error": message}, status_code=error.status_code)


def _validation_message(error: RequestValidationError) -> str:
    """The first problem of a request, in one line: ``field 'texts': Field required``."""
    problems = error.errors()
    if not problems:
        return "invalid request"
    first = problems[0]
    if first.get("type") == "json_invalid":  # its loc holds a character offset, not a field
        offset = first.get("loc", ("body", "?"))[-1]
        reason = (first.get("ctx") or {}).get("error", "")
        return f"invalid JSON at character {offset}" + (f": {reason}" if reason else "")
    where = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")]
    field = ".".join(where) or "body"
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    message = first.get("msg", "invalid").removeprefix("Value error, ")
    return f"field '{field}': {message}{more}"
