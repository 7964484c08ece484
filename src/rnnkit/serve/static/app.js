// rnnkit serve: one panel per served model, built from GET /v1/models. Plain JavaScript,
// no libraries: the page reads the same JSON API as any other client.
"use strict";

let token = sessionStorage.getItem("rnnkit-token") || "";

// ------------------------------------------------------------------ helpers

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function headers(json) {
  const h = json ? { "Content-Type": "application/json" } : {};
  if (token) h.Authorization = "Bearer " + token;
  return h;
}

// POST (JSON body, or FormData for uploads); an error answer throws its one-line message.
async function call(path, body, raw = false) {
  const form = body instanceof FormData;
  const response = await fetch(path, {
    method: body === undefined ? "GET" : "POST",
    headers: headers(!form && body !== undefined),
    body: form ? body : body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    let message = response.statusText;
    try { message = (await response.json()).error || message; } catch (e) { /* not JSON */ }
    if (response.status === 401) document.getElementById("token-form").hidden = false;
    throw new Error(message);
  }
  return raw ? response : response.json();
}

// Run `work` with the button disabled; show its error (if any) in the panel.
async function busy(panel, button, work) {
  const error = panel.querySelector(".error");
  error.textContent = "";
  button.disabled = true;
  try { await work(); } catch (e) { error.textContent = e.message; } finally { button.disabled = false; }
}

function panelFor(model, description) {
  const panel = el("section", { class: "panel", id: "panel-" + model.name, "data-app": model.app },
    el("h2", {}, model.name + " ", el("small", {}, `${model.app} · ${model.runtime}`)),
    el("p", { class: "muted" }, description));
  return panel;
}

function finish(panel, ...children) {
  for (const child of children) panel.append(child);
  panel.append(el("div", { class: "error", role: "alert" }));
  return panel;
}

const SVG = "http://www.w3.org/2000/svg";
function svgNode(tag, attributes) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  return node;
}

// A line chart in SVG: `lines` [{x: [...], y: [...], color}], an optional band {x, lo, hi}
// and points [{x, y}] drawn as red dots. x and y are numbers.
function chart(lines, band, points = []) {
  const width = 600, height = 220, pad = 28;
  const xs = lines.flatMap((l) => l.x).concat(band ? band.x : []);
  const ys = lines.flatMap((l) => l.y).concat(band ? band.lo.concat(band.hi) : [])
    .filter((v) => v !== null && Number.isFinite(v));
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const sx = (x) => pad + ((x - x0) / (x1 - x0 || 1)) * (width - 2 * pad);
  const sy = (y) => height - pad - ((y - y0) / (y1 - y0 || 1)) * (height - 2 * pad);
  const svg = svgNode("svg", { class: "chart", viewBox: `0 0 ${width} ${height}` });
  if (band) {
    const upper = band.x.map((x, i) => `${sx(x)},${sy(band.hi[i])}`);
    const lower = band.x.map((x, i) => `${sx(x)},${sy(band.lo[i])}`).reverse();
    svg.append(svgNode("polygon", { class: "band", points: upper.concat(lower).join(" "),
      fill: "#2f5bd3", "fill-opacity": 0.18, stroke: "none" }));
  }
  for (const line of lines) {
    const path = line.x.map((x, i) => line.y[i] === null ? null : `${sx(x)},${sy(line.y[i])}`)
      .filter(Boolean).join(" ");
    svg.append(svgNode("polyline", { class: line.name || "line", points: path, fill: "none",
      stroke: line.color, "stroke-width": 1.6 }));
  }
  for (const p of points) {
    svg.append(svgNode("circle", { class: "flag", cx: sx(p.x), cy: sy(p.y), r: 3.5, fill: "#d92d20" }));
  }
  for (const [value, y] of [[y1, sy(y1)], [y0, sy(y0)]]) {
    const label = svgNode("text", { x: 2, y: y + 4, "font-size": 10, fill: "#667085" });
    label.textContent = Number(value).toPrecision(3);
    svg.append(label);
  }
  return svg;
}

function fileInput(accept) {
  return el("input", { type: "file", accept });
}

// A drop zone that also holds a file input; `onFile(file)` runs on drop or choice.
function dropZone(text, accept, onFile) {
  const input = fileInput(accept);
  const zone = el("div", { class: "drop" }, el("div", {}, text), input);
  input.addEventListener("change", () => input.files[0] && onFile(input.files[0]));
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    if (e.dataTransfer.files[0]) onFile(e.dataTransfer.files[0]);
  });
  return zone;
}

function upload(file, fields = {}) {
  const form = new FormData();
  form.append("file", file, file.name || "upload");
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  return form;
}

// ------------------------------------------------------------------ panels

const PANELS = {
  sentiment(model) {
    const panel = panelFor(model, "Type a review: the label, and each word coloured by its " +
      "saliency (green pushes towards the label shown, red against it).");
    const text = el("textarea", { "aria-label": "text" });
    text.value = "A gorgeous, witty, seductive movie.";
    const out = el("div", { class: "output" });
    const button = el("button", {}, "Classify");
    button.addEventListener("click", () => busy(panel, button, async () => {
      const result = await call(`/v1/models/${model.name}/classify`,
        { texts: [text.value], explain: true });
      const p = result.predictions[0];
      out.replaceChildren(el("div", {}, el("span", { class: "label" }, String(p.label)),
        ` (probability ${p.probability.toFixed(3)})`));
      const words = el("div", { class: "tokens" });
      for (const t of p.saliency) {
        const alpha = Math.min(1, Math.abs(t.weight)) * 0.75;
        const colour = t.weight >= 0 ? `rgba(18,183,106,${alpha})` : `rgba(217,45,32,${alpha})`;
        words.append(el("span", { class: "token", style: `background:${colour}`,
          title: t.weight.toFixed(3) }, t.token));
      }
      out.append(words);
    }));
    return finish(panel, text, el("div", { class: "row" }, button), out);
  },

  translate(model) {
    const panel = panelFor(model, "Translate a verse (beam search).");
    const text = el("textarea", { "aria-label": "sentence" });
    text.value = "And God said, Let there be light: and there was light.";
    const out = el("div", { class: "output" });
    const button = el("button", {}, "Translate");
    button.addEventListener("click", () => busy(panel, button, async () => {
      const sentences = text.value.split("\n").filter((s) => s.trim());
      const result = await call(`/v1/models/${model.name}/translate`, { sentences, beam: 4 });
      out.textContent = result.translations.join("\n");
    }));
    return finish(panel, text, el("div", { class: "row" }, button), out);
  },

  lm(model) {
    const panel = panelFor(model, "Watch the language model write, token by token.");
    const prompt = el("input", { type: "text", "aria-label": "prompt", size: 36 });
    prompt.value = "And God said";
    const length = el("input", { type: "number", min: 1, max: 1000, value: 200,
      "aria-label": "tokens" });
    const temperature = el("input", { type: "number", min: 0, step: 0.1, value: 0.8,
      "aria-label": "temperature" });
    const out = el("div", { class: "output generated" });
    const button = el("button", {}, "Write");
    button.addEventListener("click", () => busy(panel, button, async () => {
      out.textContent = "";
      const response = await call(`/v1/models/${model.name}/generate`, {
        prompt: prompt.value, max_tokens: Number(length.value),
        temperature: Number(temperature.value), seed: null }, true);
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      out.append(el("b", {}, prompt.value));
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        out.append(decoder.decode(value, { stream: true }));
      }
      panel.dataset.done = "1";
    }));
    return finish(panel, el("div", { class: "row" }, prompt, "tokens", length, "temperature",
      temperature, button), out);
  },

  forecast(model) {
    const level = model.levels[0];
    const panel = panelFor(model, `Upload a CSV or Parquet history (columns: time, ` +
      `${model.target}${model.columns.series_id ? ", " + model.columns.series_id : ""}) and ` +
      `see the next ${model.horizon} steps with the ${level}% band.`);
    const input = fileInput(".csv,.parquet,.pq,.txt");
    input.setAttribute("aria-label", "history");
    // A model with known-future covariates needs their values over the horizon too.
    const future = model.future_covariates.length ? fileInput(".csv,.parquet,.pq,.txt") : null;
    if (future) {
      future.setAttribute("aria-label", "future covariates");
      panel.append(el("p", { class: "muted" }, `This model also reads ` +
        `${model.future_covariates.join(", ")} over the next ${model.horizon} steps: ` +
        `upload them as a second file (columns: ${model.future_columns}).`));
    }
    const out = el("div", { class: "output" });
    const button = el("button", {}, "Forecast");
    button.addEventListener("click", () => busy(panel, button, async () => {
      if (!input.files[0]) throw new Error("choose a CSV or Parquet file first");
      if (future && !future.files[0]) {
        throw new Error(`choose the future covariates' file (${model.future_columns}) too`);
      }
      const fields = future ? { future: future.files[0] } : {};
      const result = await call(`/v1/models/${model.name}/forecast/file`,
        upload(input.files[0], fields));
      const series = result.history[result.history.length - 1];
      const rows = result.forecast.filter((r) => String(r.series) === series.series);
      const t = (s) => Date.parse(s);
      out.replaceChildren(chart(
        [{ name: "history", x: series.time.map(t), y: series.value, color: "#1d2330" },
         { name: "median", x: rows.map((r) => t(r.time)), y: rows.map((r) => r.forecast),
           color: "#2f5bd3" }],
        { x: rows.map((r) => t(r.time)), lo: rows.map((r) => r[`lo_${level}`]),
          hi: rows.map((r) => r[`hi_${level}`]) }),
      el("div", { class: "legend" }, `series ${series.series}: history (black), forecast ` +
        `median (blue), ${level}% band (shaded); ${rows.length} steps`));
    }));
    const inputs = future ? [el("span", {}, "history"), input, el("span", {}, "future"), future]
      : [input];
    return finish(panel, el("div", { class: "row" }, ...inputs, button), out);
  },

  anomaly(model) {
    const panel = panelFor(model, "Paste a series (numbers separated by spaces or commas); " +
      "anomalous points are flagged in red.");
    const text = el("textarea", { "aria-label": "values" });
    const values = Array.from({ length: 400 }, (_, i) =>
      (Math.sin(i / 6) + (i === 300 ? 6 : 0)).toFixed(3));
    text.value = values.join(" ");
    const out = el("div", { class: "output" });
    const button = el("button", {}, "Detect");
    button.addEventListener("click", () => busy(panel, button, async () => {
      const series = text.value.split(/[\s,;]+/).filter(Boolean).map(Number);
      if (series.some((v) => !Number.isFinite(v))) throw new Error("values: expected numbers");
      const result = await call(`/v1/models/${model.name}/detect`, { values: series });
      const x = series.map((_, i) => i);
      out.replaceChildren(chart([{ x, y: series, color: "#1d2330" }], null,
        result.flagged.map((i) => ({ x: i, y: series[i] }))),
      el("div", { class: "legend" },
        `${result.flagged.length} flagged points in ${result.windows.length} windows`));
    }));
    return finish(panel, text, el("div", { class: "row" }, button), out);
  },

  speech(model) {
    const panel = panelFor(model, "Record with the microphone or upload a WAV; read the transcript.");
    const input = fileInput(".wav,.flac,.ogg,audio/*");
    // A word grammar (optional): only these words are heard, as in `speech transcribe --words`.
    const words = el("input", { type: "text", "aria-label": "words", size: 24,
      placeholder: "words: any, or digits, or yes,no" });
    const oneWord = el("input", { type: "checkbox", "aria-label": "one word" });
    const out = el("div", { class: "output transcript" });
    const send = (blob, name) => busy(panel, button, async () => {
      const grammar = words.value.trim()
        ? { words: words.value.trim(), one_word: String(oneWord.checked) } : {};
      const result = await call(`/v1/models/${model.name}/transcribe`,
        upload(new File([blob], name), grammar));
      out.textContent = result.text || "(no speech heard)";
      panel.dataset.done = "1";
    });
    const button = el("button", {}, "Transcribe");
    button.addEventListener("click", () => {
      if (input.files[0]) send(input.files[0], input.files[0].name);
      else panel.querySelector(".error").textContent = "choose a WAV file or record first";
    });
    const record = el("button", { class: "record" }, "● Record 3 s");
    record.addEventListener("click", () => busy(panel, record, async () => {
      const wav = await recordWav(3);
      await send(wav, "recording.wav");
    }));
    return finish(panel, el("div", { class: "row" }, record, input, button),
      el("div", { class: "row" }, words, el("label", {}, oneWord, " one word")), out);
  },

  caption(model) {
    const what = model.kind === "video" ? "an animated GIF/PNG/WebP" : "an image";
    const panel = panelFor(model, `Drop ${what}: its caption, and for each word where the ` +
      "decoder looked (brighter: more attention).");
    const out = el("div", { class: "output" });
    const zone = dropZone("Drop a file here or choose one:", "image/*", (file) => {
      busy(panel, zone.querySelector("input"), async () => {
        const result = await call(`/v1/models/${model.name}/caption`, upload(file));
        const maps = el("div", { class: "maps" });
        const image = new Image();
        image.src = result.image;
        await image.decode();
        result.words.forEach((word, i) => {
          const canvas = el("canvas", { width: 64, height: 64 });
          drawAttention(canvas, image, result.attention[i]);
          maps.append(el("figure", {}, canvas, el("figcaption", {}, word)));
        });
        out.replaceChildren(el("div", { class: "caption label" }, result.caption), maps);
      });
    });
    return finish(panel, zone, out);
  },

  music(model) {
    const panel = panelFor(model, "Compose a few bars and play them here (MIDI rendered to WAV).");
    const bars = el("input", { type: "number", min: 1, max: 64, value: 4, "aria-label": "bars" });
    const temperature = el("input", { type: "number", min: 0, step: 0.1, value: 0.9,
      "aria-label": "temperature" });
    const key = el("input", { type: "text", value: "C", size: 4, "aria-label": "key" });
    const seed = el("input", { type: "number", value: 0, "aria-label": "seed" });
    const out = el("div", { class: "output" });
    const button = el("button", {}, "Compose");
    button.addEventListener("click", () => busy(panel, button, async () => {
      const result = await call(`/v1/models/${model.name}/compose`, {
        bars: Number(bars.value), temperature: Number(temperature.value),
        key: key.value || null, seed: Number(seed.value) });
      const midi = el("a", { href: "data:audio/midi;base64," + result.midi,
        download: `${model.name}.mid` }, "download MIDI");
      out.replaceChildren(el("div", { class: "notes" }, `${result.notes} notes, ` +
        `${result.bars} bars at ${result.tempo_bpm} bpm · `, midi));
      if (result.wav) {
        out.append(el("audio", { controls: "", src: "data:audio/wav;base64," + result.wav }));
      } else {
        out.append(el("div", { class: "muted" }, result.message));
      }
    }));
    return finish(panel, el("div", { class: "row" }, "bars", bars, "temperature", temperature,
      "key", key, "seed", seed, button), out);
  },

  experiment(model) {
    const panel = panelFor(model, "The vanishing gradient: ‖∂L/∂h_t‖ against the distance " +
      "from the loss, one line per cell (log scale).");
    const img = el("img", { class: "plot", alt: "gradient norms" });
    call(`/v1/models/${model.name}/plot`, undefined, true)
      .then((r) => r.blob())
      .then((blob) => { img.src = URL.createObjectURL(blob); })
      .catch((e) => { panel.querySelector(".error").textContent = e.message; });
    return finish(panel, img);
  },
};

// The image with the attention map `grid` (rows x columns, summing to 1) laid over it.
function drawAttention(canvas, image, grid) {
  const ctx = canvas.getContext("2d");
  ctx.drawImage(image, 0, 0, canvas.width, canvas.height);
  if (!grid || !grid.length) return;
  const rows = grid.length, cols = grid[0].length;
  const peak = Math.max(...grid.flat()) || 1;
  const w = canvas.width / cols, h = canvas.height / rows;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      ctx.fillStyle = `rgba(0,0,0,${0.8 * (1 - grid[r][c] / peak)})`;
      ctx.fillRect(c * w, r * h, w, h);
    }
  }
}

// Record `seconds` of microphone audio as a 16-bit mono WAV Blob.
async function recordWav(seconds) {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  const context = new AudioContext();
  const source = context.createMediaStreamSource(stream);
  const processor = context.createScriptProcessor(4096, 1, 1);
  const chunks = [];
  processor.onaudioprocess = (e) => chunks.push(new Float32Array(e.inputBuffer.getChannelData(0)));
  source.connect(processor);
  processor.connect(context.destination);
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  processor.disconnect();
  source.disconnect();
  stream.getTracks().forEach((t) => t.stop());
  const rate = context.sampleRate;
  await context.close();
  const samples = chunks.reduce((n, c) => n + c.length, 0);
  const view = new DataView(new ArrayBuffer(44 + samples * 2));
  const text = (offset, s) => [...s].forEach((ch, i) => view.setUint8(offset + i, ch.charCodeAt(0)));
  text(0, "RIFF"); view.setUint32(4, 36 + samples * 2, true); text(8, "WAVE"); text(12, "fmt ");
  view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, rate, true); view.setUint32(28, rate * 2, true);
  view.setUint16(32, 2, true); view.setUint16(34, 16, true); text(36, "data");
  view.setUint32(40, samples * 2, true);
  let offset = 44;
  for (const chunk of chunks) {
    for (const v of chunk) {
      view.setInt16(offset, Math.max(-1, Math.min(1, v)) * 0x7fff, true);
      offset += 2;
    }
  }
  return new Blob([view], { type: "audio/wav" });
}

// ------------------------------------------------------------------ start

async function start() {
  const status = document.getElementById("status");
  const main = document.getElementById("panels");
  try {
    const { models } = await call("/v1/models");
    main.replaceChildren(...models.filter((m) => PANELS[m.app]).map((m) => PANELS[m.app](m)));
    status.textContent = `${models.length} model(s) served.`;
  } catch (e) {
    status.textContent = e.message;
  }
}

document.getElementById("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  token = document.getElementById("token").value;
  sessionStorage.setItem("rnnkit-token", token);
  document.getElementById("token-form").hidden = true;
  start();
});

start();
