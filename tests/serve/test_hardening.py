"""Fixes of the serve audit: absurd audio headers, sampling bounds and worker errors, forecasts
with known-future covariates and several series, chunked bodies over the limit, messages."""

from __future__ import annotations

import copy
import io
import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from served_models import (
    future_rows,
    seasonal_history,
    tone,
    train_covariates,
    two_series_with_workdays,
)

from rnnkit.serve import Settings, create_app, load_models

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def client(served):
    with TestClient(create_app(served, Settings(max_body_bytes=100_000))) as c:
        yield c


def error(response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and "\n" not in body["error"]
    return body["error"]


def wav_bytes(audio: np.ndarray, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def with_header(wav: bytes, rate: int | None = None, data_bytes: int | None = None) -> bytes:
    """``wav`` (16-bit mono, 44-byte header) with its header's rate or data size changed."""
    header = bytearray(wav)
    if rate is not None:
        header[24:28] = rate.to_bytes(4, "little")
        header[28:32] = (2 * rate).to_bytes(4, "little")
    if data_bytes is not None:
        assert header[36:40] == b"data"
        header[40:44] = data_bytes.to_bytes(4, "little")
    return bytes(header)


def transcribe(client, wav: bytes):
    files = {"file": ("clip.wav", wav, "audio/wav")}
    return client.post("/v1/models/speech/transcribe", files=files)


# ---------------------------------------------------------------------------------- audio


@pytest.mark.parametrize("rate", [1, 2**30])
def test_an_absurd_sample_rate_is_refused_before_resampling(client, rate):
    wav = with_header(wav_bytes(tone(300)), rate=rate)
    message = error(transcribe(client, wav), 400)
    assert (
        message == f"clip.wav: sample rate {rate:,} Hz in its header; expected 1,000 to 384,000 Hz"
    )


def test_audio_over_the_duration_limit_gets_413(model_folders):
    settings = Settings(max_audio_s=1.0)
    speech = load_models([model_folders["speech"]], settings)
    with TestClient(create_app(speech, settings)) as c:
        message = error(transcribe(c, wav_bytes(tone(300, seconds=2.0))), 413)
        assert message.startswith("clip.wav: 2 s of audio") and "limit is 1 s" in message


def test_a_header_claiming_an_hour_of_one_second_is_transcribed_with_a_warning(client):
    wav = with_header(wav_bytes(tone(300, seconds=1.0)), data_bytes=2 * 16000 * 3600)
    answer = transcribe(client, wav)
    assert answer.status_code == 200, answer.text
    assert answer.json()["seconds"] == 1.0
    assert (
        "header claims 57,600,000 frames but the file holds 16,000" in answer.json()["warnings"][0]
    )


# ------------------------------------------------------------------------ lm and compose


@pytest.mark.parametrize(
    ("field", "value"), [("seed", 2**64), ("seed", -1), ("temperature", 1e-300)]
)
@pytest.mark.parametrize("route", ["lm/generate", "music/compose"])
def test_sampling_seeds_and_temperatures_are_bounded(client, route, field, value):
    body = {"stream": False, "max_tokens": 5} if route == "lm/generate" else {"bars": 1}
    answer = client.post(f"/v1/models/{route}", json={**body, field: value})
    assert f"field '{field}'" in error(answer, 422)


def test_temperature_zero_is_greedy_as_in_the_cli(client, served):
    body = {"prompt": "And", "max_tokens": 8, "temperature": 0, "stream": False}
    answer = client.post("/v1/models/lm/generate", json=body)
    assert answer.json()["text"] == served["lm"].model.generate("And", 8, temperature=0.0)


def failing_lm(served, after: int):
    """A copy of the served language model whose sampling fails after ``after`` pieces."""
    lm = copy.copy(served["lm"])

    def stream(prompt, max_tokens, **sampling):
        yield from ["And"] * after
        raise ValueError("sampling broke")

    lm.stream = stream
    return lm


def app(lm):
    return create_app({"lm": lm}, Settings())


def test_a_sampling_failure_reaches_the_client(served):
    body = {"max_tokens": 5}
    with TestClient(app(failing_lm(served, 0)), raise_server_exceptions=False) as c:
        for stream in (False, True):
            answer = c.post("/v1/models/lm/generate", json={**body, "stream": stream})
            assert error(answer, 500) == "internal error (ValueError: sampling broke)"
    with TestClient(app(failing_lm(served, 2)), raise_server_exceptions=False) as c:
        answer = c.post("/v1/models/lm/generate", json={**body, "stream": False})
        assert "sampling broke" in error(answer, 500)
        streamed = c.post("/v1/models/lm/generate", json=body)
        assert streamed.text == "AndAnd\n[error: internal error (ValueError: sampling broke)]\n"


# ------------------------------------------------------------------------------ forecast


@pytest.fixture(scope="module")
def covariate_client(tmp_path_factory):
    folder = tmp_path_factory.mktemp("covariates") / "covariates"
    train_covariates(folder)
    with TestClient(create_app(load_models([folder], Settings()), Settings())) as c:
        yield c


def records(frame: pd.DataFrame) -> list[dict]:
    return json.loads(frame.to_json(orient="records", date_format="iso"))


def test_several_series_with_known_future_covariates_from_rows_and_files(covariate_client):
    route = "/v1/models/covariates/forecast"
    history = two_series_with_workdays()
    rows = records(history)
    missing = covariate_client.post(route, json={"rows": rows})
    assert 'send their values for the next 4 steps as "future" rows' in error(missing, 400)
    future = future_rows(history)
    answer = covariate_client.post(route, json={"rows": rows, "future": records(future)})
    assert answer.status_code == 200, answer.text
    forecast = answer.json()["forecast"]
    assert sorted({r["series"] for r in forecast}) == ["north", "south"] and len(forecast) == 8
    files = {
        "file": ("history.csv", history.to_csv(index=False).encode(), "text/csv"),
        "future": ("future.csv", future.to_csv(index=False).encode(), "text/csv"),
    }
    from_file = covariate_client.post(f"{route}/file", files=files)
    assert from_file.status_code == 200, from_file.text
    np.testing.assert_allclose(
        [r["forecast"] for r in from_file.json()["forecast"]],
        [r["forecast"] for r in forecast],
        rtol=1e-5,
    )


def test_forecast_rows_with_an_extra_numeric_column(client):
    rows = records(seasonal_history().assign(extra=1.0))
    answer = client.post("/v1/models/forecast/forecast", json={"rows": rows, "horizon": 2})
    assert answer.status_code == 200, answer.text
    unwanted = client.post("/v1/models/forecast/forecast", json={"rows": rows, "future": rows})
    assert "uses no known-future covariates" in error(unwanted, 400)


# ------------------------------------------------------------------------------- anomaly


def test_nothing_flagged_is_a_null_threshold_and_huge_values_are_refused(client):
    answer = client.post("/v1/models/anomaly/detect", json={"values": [1.0] * 200})
    result = answer.json()
    assert answer.status_code == 200 and result["flagged"] == []
    assert result["threshold"] is None and result["can_flag"] is False
    huge = client.post("/v1/models/anomaly/detect", json={"values": [1.0, 1e300, -1e300]})
    assert error(huge, 400).startswith("values, position 1: 1e+300; expected magnitudes up to")


# ---------------------------------------------------------------------- bodies, messages


def test_chunked_bodies_over_the_limit_get_413(served):
    settings = Settings(max_body_bytes=1_000, max_upload_bytes=5_000)
    with TestClient(create_app(served, settings)) as c:

        def chunks(total: int):
            yield b'{"texts": ["'
            yield from [b"a" * 500] * (total // 500)
            yield b'"]}'

        big = c.post("/v1/models/sentiment/classify", content=chunks(3_000), headers=JSON)
        assert error(big, 413) == "request body is over the limit of 1,000 bytes"
        head = b'--XX\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
        upload = iter([head, b"\0" * 4_000, b"\0" * 4_000, b"\r\n--XX--\r\n"])
        kind = {"content-type": "Multipart/form-data; boundary=XX"}
        too_big = c.post("/v1/models/speech/transcribe", content=upload, headers=kind)
        assert error(too_big, 413) == "upload is over the limit of 5,000 bytes"
        small = head + wav_bytes(tone(300, 0.05)) + b"\r\n--XX--\r\n"  # over the JSON limit
        fine = c.post("/v1/models/speech/transcribe", content=small, headers=kind)
        assert fine.status_code == 200, fine.text
        assert c.get("/health").status_code == 200


def test_messages_name_the_problem(client):
    route = "/v1/models/sentiment/classify"
    broken = client.post(route, content=b'{"texts": [', headers=JSON)
    assert error(broken, 422).startswith("invalid JSON at character 11")
    latin = client.post(route, content='{"texts": ["caf\u00e9"]}'.encode("latin-1"), headers=JSON)
    assert "not UTF-8" in error(latin, 400)
    infinite = client.post("/v1/models/music/compose", content=b'{"bars": Infinity}', headers=JSON)
    assert error(infinite, 422).startswith("field 'bars'")
    for body in ({"texts": ["good"], "explain": "yes"}, {"texts": "good"}):
        assert error(client.post(route, json=body), 422).startswith("field")
    lax = {"prompt": "And", "max_tokens": "10", "stream": False}
    assert "max_tokens" in error(client.post("/v1/models/lm/generate", json=lax), 422)


def test_an_empty_sentence_is_refused_as_an_empty_text_is(client):
    answer = client.post("/v1/models/translate/translate", json={"sentences": ["the dog", " "]})
    assert error(answer, 400) == "sentence 2: empty; expected some words to translate"
