"""The HTTP API of ``rnnkit serve`` on tiny trained models: answers, batching and errors."""

from __future__ import annotations

import asyncio
import io
import json

import httpx
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from PIL import Image
from served_models import TOKEN, seasonal_history, tone

from rnnkit.errors import UserError
from rnnkit.serve import Settings, create_app, detect_app, load_models


@pytest.fixture(scope="module")
def client(served):
    with TestClient(create_app(served, Settings(max_body_bytes=100_000))) as c:
        yield c


def csv_bytes(frame) -> bytes:
    return frame.to_csv(index=False).encode()


def wav_bytes(audio: np.ndarray, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format="WAV")
    return buffer.getvalue()


def png_bytes(size: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), 200, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


# ------------------------------------------------------------------------ discovery


def test_each_folder_is_recognised_as_its_app(model_folders):
    assert {app: detect_app(folder) for app, folder in model_folders.items()} == {
        app: app for app in model_folders
    }


def test_health_ready_and_the_model_list(client, model_folders):
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"ready": True, "models": len(model_folders)}
    models = client.get("/v1/models").json()["models"]
    assert {m["name"]: m["app"] for m in models} == {app: app for app in model_folders}
    assert all(m["runtime"] == "torch" for m in models)


def test_openapi_schema_lists_versioned_routes_with_examples(client):
    schema = client.get("/openapi.json").json()
    assert "/v1/models/{name}/classify" in schema["paths"]
    assert "/v1/models/{name}/forecast/file" in schema["paths"]
    examples = schema["components"]["schemas"]["ClassifyRequest"]["examples"]
    assert examples[0]["texts"]


# ------------------------------------------------------------------------ every app


def test_sentiment_labels_probabilities_and_saliency_match_the_model(client, served):
    texts = ["the film is wonderful", "the film is dull"]
    answer = client.post("/v1/models/sentiment/classify", json={"texts": texts, "explain": True})
    assert answer.status_code == 200
    predictions = answer.json()["predictions"]
    direct = served["sentiment"].model.predict(texts)
    assert [p["label"] for p in predictions] == [d.label for d in direct]
    np.testing.assert_allclose(
        [p["probability"] for p in predictions], [d.probability for d in direct], rtol=1e-5
    )
    assert sum(predictions[0]["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    tokens = [t["token"] for t in predictions[0]["saliency"]]
    assert tokens == ["the", "film", "is", "wonderful"]
    assert max(abs(t["weight"]) for t in predictions[0]["saliency"]) == pytest.approx(1)


def test_translate_equals_the_translator(client, served):
    sentences = ["the dog sees the cat", "the big cat"]
    answer = client.post("/v1/models/translate/translate", json={"sentences": sentences, "beam": 2})
    assert answer.status_code == 200
    assert answer.json()["translations"] == served["translate"].model.translate(
        sentences, beam_width=2
    )


def test_language_model_streams_the_same_text_as_generate(client, served):
    body = {"prompt": "And God", "max_tokens": 20, "temperature": 1.0, "seed": 3}
    with client.stream("POST", "/v1/models/lm/generate", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        pieces = list(response.iter_text())
    expected = served["lm"].model.generate("And God", 20, temperature=1.0, seed=3)
    assert "".join(pieces) == expected
    whole = client.post("/v1/models/lm/generate", json={**body, "stream": False}).json()
    assert whole["text"] == expected


def test_forecast_from_rows_and_from_an_uploaded_csv_agree(client):
    history = seasonal_history()
    rows = json.loads(history.to_json(orient="records", date_format="iso"))
    from_rows = client.post("/v1/models/forecast/forecast", json={"rows": rows, "horizon": 4})
    assert from_rows.status_code == 200, from_rows.text
    files = {"file": ("history.csv", csv_bytes(history), "text/csv")}
    from_file = client.post("/v1/models/forecast/forecast/file", files=files, data={"horizon": 4})
    assert from_file.status_code == 200, from_file.text
    forecast = from_file.json()["forecast"]
    same = from_rows.json()["forecast"]
    assert len(forecast) == 4 and [r["time"] for r in forecast] == [r["time"] for r in same]
    np.testing.assert_allclose(  # the CSV rounds the history to 15 digits
        [r["forecast"] for r in forecast], [r["forecast"] for r in same], rtol=1e-6
    )
    assert all(r["lo_80"] <= r["forecast"] <= r["hi_80"] for r in forecast)
    next_hour = history["time"].iloc[-1] + pd.Timedelta(hours=1)
    assert pd.Timestamp(forecast[0]["time"]) == next_hour


def test_anomaly_detection_flags_points_of_the_series(client, served):
    values = seasonal_history(300)["load"].to_list()
    values[250] += 40
    answer = client.post("/v1/models/anomaly/detect", json={"values": values})
    assert answer.status_code == 200
    result = answer.json()
    direct = served["anomaly"].model.detect(np.asarray(values))
    assert result["flagged"] == np.flatnonzero(direct.frame["anomaly"]).tolist()
    assert len(result["score"]) == len(values)


def test_speech_transcribes_a_wav_upload(client, served):
    audio = np.concatenate([tone(300), tone(600)])
    files = {"file": ("clip.wav", wav_bytes(audio), "audio/wav")}
    answer = client.post("/v1/models/speech/transcribe", files=files, data={"beam": 1})
    assert answer.status_code == 200, answer.text
    assert answer.json()["text"] == served["speech"].model.transcribe([audio], beam_width=1)[0]
    assert answer.json()["seconds"] == pytest.approx(1.0)
    # Under a word grammar the text is made of the grammar's words only.
    grammar = {"beam": 1, "words": "digits", "one_word": "true"}
    answer = client.post("/v1/models/speech/transcribe", files=files, data=grammar)
    assert answer.status_code == 200, answer.text
    digits = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    expected = served["speech"].model.transcribe([audio], words=digits, one_word=True)[0]
    assert answer.json()["text"] == expected and expected in digits
    bad = client.post("/v1/models/speech/transcribe", files=files, data={"words": "r2d2"})
    assert error(bad, 400) == "word 'r2d2': only letters and apostrophes can be spelled"


def test_caption_with_one_attention_map_per_word(client):
    files = {"file": ("photo.png", png_bytes(), "image/png")}
    answer = client.post("/v1/models/caption/caption", files=files)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["words"] == result["caption"].split()
    assert len(result["attention"]) == len(result["words"])
    for grid in result["attention"]:
        assert np.array(grid).shape == (8, 8)
    assert result["image"].startswith("data:image/png;base64,")


def test_music_composes_midi_that_reads_back(client, tmp_path):
    import base64

    from rnnkit.data.music import read_midi

    answer = client.post("/v1/models/music/compose", json={"bars": 2, "seed": 1, "key": "G"})
    assert answer.status_code == 200, answer.text
    result = answer.json()
    (tmp_path / "piece.mid").write_bytes(base64.b64decode(result["midi"]))
    assert len(read_midi(tmp_path / "piece.mid").notes) == result["notes"]
    assert result["wav"] is None or base64.b64decode(result["wav"])[:4] == b"RIFF"


def test_experiment_plot_is_a_png(client):
    answer = client.get("/v1/models/experiment/plot")
    assert answer.status_code == 200
    assert answer.content[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------ micro-batching


def test_concurrent_requests_are_batched_and_answered_separately(served):
    settings = Settings(batch_wait_ms=50, max_batch=8)
    app = create_app(served, settings)
    texts = [f"the film is {w}" for w in ["wonderful", "dull", "witty", "awful", "moving"]]

    async def many() -> list[dict]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            answers = await asyncio.gather(
                *(http.post("/v1/models/sentiment/classify", json={"texts": [t]}) for t in texts)
            )
        return [a.json()["predictions"][0] for a in answers]

    results = asyncio.run(many())
    assert [r["text"] for r in results] == texts
    alone = served["sentiment"].model.predict(texts)
    np.testing.assert_allclose(
        [r["probability"] for r in results], [p.probability for p in alone], rtol=1e-5
    )
    assert max(app.state.batchers["sentiment"].batch_sizes) > 1


# ------------------------------------------------------------------------ errors


def error(response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and "\n" not in body["error"]
    return body["error"]


def test_wrong_fields_get_one_line_422(client):
    assert "texts" in error(client.post("/v1/models/sentiment/classify", json={"text": "x"}), 422)
    assert "beam" in error(
        client.post("/v1/models/translate/translate", json={"sentences": ["a"], "beam": 0}), 422
    )
    message = error(client.post("/v1/models/sentiment/classify", content=b"{not json"), 422)
    assert message.startswith("field")


def test_user_errors_carry_the_cli_message(client, served):
    with pytest.raises(UserError) as raised:
        served["lm"].model.encode("And God \u2603", what="prompt")
    body = {"prompt": "And God \u2603", "max_tokens": 5}
    assert error(client.post("/v1/models/lm/generate", json=body), 400) == str(raised.value)
    empty = client.post("/v1/models/sentiment/classify", json={"texts": ["  "]})
    assert error(empty, 400) == "text 1: empty text; expected some words to classify"


def test_unparseable_csv_and_horizon_too_long(client):
    files = {"file": ("broken.csv", b'time,load\n"2024-01-01,1\n', "text/csv")}
    message = error(client.post("/v1/models/forecast/forecast/file", files=files), 400)
    assert message.startswith("broken.csv") and "/tmp" not in message
    history = csv_bytes(seasonal_history())
    files = {"file": ("history.csv", history, "text/csv")}
    answer = client.post("/v1/models/forecast/forecast/file", files=files, data={"horizon": 7})
    assert error(answer, 400).startswith("horizon 7: this model forecasts 1 to 6 steps")


def test_empty_and_non_audio_uploads(client):
    empty = {"file": ("clip.wav", b"", "audio/wav")}
    assert "clip.wav: empty upload" in error(
        client.post("/v1/models/speech/transcribe", files=empty), 400
    )
    text = {"file": ("notes.wav", b"hello, not audio", "audio/wav")}
    message = error(client.post("/v1/models/speech/transcribe", files=text), 400)
    assert message.startswith("notes.wav: not a readable audio file")
    picture = {"file": ("notes.png", b"hello", "image/png")}
    assert error(client.post("/v1/models/caption/caption", files=picture), 400).startswith(
        "notes.png: not an image"
    )


def test_an_empty_or_infinite_series_and_a_silent_upload(client):
    empty = client.post("/v1/models/anomaly/detect", json={"values": []})
    assert error(empty, 400) == "values: empty; expected a series of numbers, oldest first"
    body = b'{"values": [1, Infinity, 2]}'
    headers = {"content-type": "application/json"}
    infinite = client.post("/v1/models/anomaly/detect", content=body, headers=headers)
    assert error(infinite, 400) == "values, position 1: infinite; expected a number"
    silent = {"file": ("quiet.wav", wav_bytes(np.zeros(800, np.float32)), "audio/wav")}
    answer = client.post("/v1/models/speech/transcribe", files=silent)
    assert answer.json()["warnings"][0].startswith("quiet.wav: silent")


def test_a_one_megabyte_text_is_refused_and_the_server_keeps_serving(client):
    huge = {"texts": ["good " * 200_000]}
    assert "over the limit" in error(client.post("/v1/models/sentiment/classify", json=huge), 413)
    long = {"texts": ["good " * 2_000]}
    message = error(client.post("/v1/models/sentiment/classify", json=long), 400)
    assert message == "text 1: 10,000 characters; the limit is 5,000 (--max-text-chars)"
    ok = client.post("/v1/models/sentiment/classify", json={"texts": ["good"]})
    assert ok.status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/v1/models/..%2F..%2Fetc%2Fpasswd/plot",
        "/v1/models/%2Fetc%2Fpasswd/plot",
        "/v1/models/../../etc/passwd",
        "/v1/models/sentiment/../../../etc/passwd",
        "/v1/models/nope/plot",
        "/v1/models/sentiment/plot",
    ],
)
def test_names_cannot_reach_outside_the_served_folders(client, path):
    answer = client.get(path)
    assert answer.status_code == 404
    assert "root:" not in answer.text


def test_a_request_over_the_time_limit_gets_503_and_the_server_keeps_serving(served):
    # The first request of a micro-batch waits 50 ms for company: past a 1 ms limit.
    settings = Settings(request_timeout_s=0.001, batch_wait_ms=50)
    with TestClient(create_app(served, settings)) as c:
        slow = c.post("/v1/models/sentiment/classify", json={"texts": ["good"]})
        assert "took longer than 0.001 s" in error(slow, 503)
        assert c.get("/health").status_code == 200
        assert c.get("/v1/models/experiment/plot").status_code == 200


def test_the_token_is_required_when_set(served):
    with TestClient(create_app(served, Settings(token=TOKEN))) as c:
        assert "bearer token" in error(c.get("/v1/models"), 401)
        wrong = c.get("/v1/models", headers={"Authorization": "Bearer nope"})
        assert error(wrong, 401)
        right = c.get("/v1/models", headers={"Authorization": f"Bearer {TOKEN}"})
        assert right.status_code == 200
        assert c.get("/health").status_code == 200  # liveness needs no token


def test_loading_refuses_a_folder_of_no_app(tmp_path):
    (tmp_path / "config.json").write_text('{"something": 1}')
    with pytest.raises(UserError, match="not a model folder of any rnnkit application"):
        load_models([tmp_path], Settings())
    with pytest.raises(UserError, match="no such model folder"):
        load_models([tmp_path / "missing"], Settings())


def test_cli_serve_refuses_a_bad_folder_in_one_line(tmp_path, capsys):
    from rnnkit.cli import main

    assert main(["serve", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_runtime_onnx_serves_the_exported_sentiment_model_with_the_same_answers(
    model_folders, tmp_path
):
    import shutil

    pytest.importorskip("onnxruntime")
    from rnnkit.export import export_model

    folder = tmp_path / "sentiment"
    shutil.copytree(model_folders["sentiment"], folder)
    export_model(folder)
    settings = Settings()
    models = load_models([folder, model_folders["translate"]], settings, runtime="onnx")
    assert {m.name: m.runtime for m in models.values()} == {
        "sentiment": "onnx",
        "translate": "torch",  # no export for translation: served by PyTorch, and said so
    }
    texts = ["the film is wonderful", "the film is dull"]
    torch_model = load_models([folder], settings)["sentiment"].model
    with TestClient(create_app(models, settings)) as c:
        listed = {m["name"]: m["runtime"] for m in c.get("/v1/models").json()["models"]}
        assert listed == {"sentiment": "onnx", "translate": "torch"}
        answer = c.post("/v1/models/sentiment/classify", json={"texts": texts, "explain": True})
        answer = answer.json()
    assert [t["token"] for t in answer["predictions"][0]["saliency"]] == texts[0].split()
    np.testing.assert_allclose(
        [p["probability"] for p in answer["predictions"]],
        [p.probability for p in torch_model.predict(texts)],
        atol=1e-5,
    )
