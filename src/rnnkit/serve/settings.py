"""The server's settings: limits with safe defaults, the token, the runtime."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    """What `create_app` needs to know besides the models.

    Args:
        token: when set, every ``/v1`` route wants ``Authorization: Bearer <token>``.
        max_body_bytes: largest JSON request body (a 1 MB text is refused before parsing).
        max_upload_bytes: largest multipart request (CSV, Parquet, WAV, image, video).
        max_text_chars: longest single text (review, prompt, sentence).
        max_items: most texts or sentences in one request.
        max_new_tokens: most tokens a language model writes for one request.
        max_bars: longest piece of music one request composes.
        max_audio_s: longest recording one upload may hold, in seconds (read from its header
            before the audio is decoded and resampled).
        request_timeout_s: a request whose inference takes longer gets a 503 (the model's
            worker finishes the call in the background; the server keeps serving).
        max_batch: most items (texts, sentences) that micro-batching runs in one call.
        batch_wait_ms: how long the first request of a batch waits for others to join.
    """

    token: str | None = None
    max_body_bytes: int = 1_000_000
    max_upload_bytes: int = 20_000_000
    max_text_chars: int = 5_000
    max_items: int = 64
    max_new_tokens: int = 1_000
    max_bars: float = 64
    max_audio_s: float = 600.0
    request_timeout_s: float = 60.0
    max_batch: int = 32
    batch_wait_ms: float = 5.0
