#!/usr/bin/python3
"""A stand-in for vLLM's, TEI's or Ollama's HTTP server, in the container: their API shapes, with a toy model.

fake_service.py vllm|tei ADDRESS PORT MODEL PAYLOAD_LIMIT NAME
fake_service.py ollama ADDRESS PORT MODELS_DIR CONTEXT_LENGTH NAME

Ollama serves only the models pulled into its models directory (`POST /api/pull` of a tag its registry has: the
tags of ollama_models.csv, the repo's data file; a pull writes the tag's manifest where Ollama keeps it, so a
restarted server still has it), answers `GET /` with "Ollama is running", has no /health and no /metrics, and
lists and resolves models by `name:tag` (a bare name means `:latest`).

The toy model is deterministic so the boot test can check answers: chat and completions echo the
last prompt ("You said: <text>"), embeddings are unit vectors derived from the text's words, rerank
scores are the share of query words a text contains. Like the real servers it loads before it
listens (a few seconds), and TEI refuses bodies over its --payload-limit with 413. GET /metrics answers
Prometheus text with the metrics the pinned engine publishes (service_metrics.csv, the repo's data file).
"""

import base64
import csv
import hashlib
import json
import math
import struct
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

KIND, ADDRESS, PORT, MODEL, PAYLOAD_LIMIT, NAME = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), sys.argv[6]
DIMENSIONS = 16
LOAD_SECONDS = 1 if KIND == "ollama" else 4  # Ollama listens at once and loads a model when asked
ENGINE = KIND  # the docker stand-in runs "vllm" or "tei", the engines of service_metrics.csv
with open("/usr/local/lib/boot-stub/service_metrics.csv") as f:
    METRICS = [row for row in csv.DictReader(f) if row["engine"] == ENGINE]
SERVED = {"count": 0}


def log(event: str) -> None:
    with open("/var/log/boot-stub-services.log", "a") as f:
        f.write(f"{time.time():.3f} {NAME} {event}\n")


def words(text: str) -> list[str]:
    return [w.strip(".,?!").lower() for w in text.split() if w.strip(".,?!")]


def embed(text: str) -> list[float]:
    vector = [0.0] * DIMENSIONS
    for word in words(text) or [""]:
        digest = hashlib.sha256(word.encode()).digest()
        for i in range(DIMENSIONS):
            vector[i] += digest[i] / 255 - 0.5
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def rerank_score(query: str, text: str) -> float:
    asked = set(words(query))
    return len(asked & set(words(text))) / max(len(asked), 1)


def reply(messages: list[dict]) -> str:
    last = next(m for m in reversed(messages) if m.get("role") == "user")
    content = last["content"] if isinstance(last["content"], str) else " ".join(p.get("text", "") for p in last["content"])
    return f"You said: {content}"


def ollama_registry() -> set[str]:
    with open("/usr/local/lib/boot-stub/ollama_models.csv") as f:
        return {row["tag"] for row in csv.DictReader(f)}


def manifest(tag: str) -> Path:
    """Where Ollama keeps a library tag's manifest: <models>/manifests/registry.ollama.ai/library/<name>/<tag>."""
    name, _, version = tag.partition(":")
    return Path(MODEL) / "manifests" / "registry.ollama.ai" / "library" / name / (version or "latest")


def pulled() -> list[str]:
    root = Path(MODEL) / "manifests" / "registry.ollama.ai" / "library"
    return sorted(f"{p.parent.name}:{p.name}" for p in root.glob("*/*")) if root.exists() else []


def resolve(model: str) -> str:
    return model if ":" in model else f"{model}:latest"


def prometheus_text() -> str:
    """The engine's metrics in Prometheus' text format, the label sets the engine gives them (vLLM: model and engine)."""
    labels = f'{{engine="0",model_name="{MODEL}"}}' if KIND == "vllm" else ""
    lines = []
    for row in METRICS:
        name, kind = row["metric"], row["type"]
        base = name.removesuffix("_total") if kind == "counter" and KIND == "vllm" else name
        lines += [f"# HELP {base} {row['meaning']}", f"# TYPE {base} {kind}"]
        if kind == "histogram":
            lines += [f'{name}_bucket{{{labels[1:-1]}{"," if labels else ""}le="+Inf"}} {SERVED["count"]}',
                      f"{name}_sum{labels} 0.0", f"{name}_count{labels} {SERVED['count']}"]  # fmt: skip
        else:
            lines.append(f"{name}{labels} {float(SERVED['count']) if kind == 'counter' else 0.0}")
    return "\n".join(lines) + "\n"


def usage(prompt: str, completion: str = "") -> dict:
    p, c = len(words(prompt)), len(words(completion))
    return {"prompt_tokens": p, "total_tokens": p + c, "completion_tokens": c}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def send_json(self, status: int, body) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def error(self, status: int, message: str) -> None:
        if KIND == "vllm":
            self.send_json(status, {"error": {"message": message, "type": "BadRequestError", "param": None, "code": status}})
        else:
            self.send_json(status, {"error": message, "error_type": "Validation"})

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        if KIND == "tei" and length > PAYLOAD_LIMIT:
            self.send_response(413)
            self.send_header("Content-Length", "0")
            self.end_headers()
            self.rfile.read(length)
            return None
        return json.loads(self.rfile.read(length) or b"{}")

    def send_text(self, status: int, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def ollama_not_found(self, model: str) -> None:
        self.send_json(404, {"error": {"message": f'model "{model}" not found, try pulling it first', "type": "api_error",
                                       "param": None, "code": None}})  # fmt: skip

    def card(self, tag: str) -> dict:
        return {"id": tag, "object": "model", "created": int(manifest(tag).stat().st_mtime), "owned_by": "library"}

    def ollama_get(self) -> None:
        if self.path == "/":
            self.send_text(200, "Ollama is running")
        elif self.path == "/api/version":
            self.send_json(200, {"version": "0.32.15"})
        elif self.path == "/api/tags":
            self.send_json(200, {"models": [{"name": t, "model": t, "size": 3_800_000_000, "details": {"format": "gguf"}} for t in pulled()]})
        elif self.path == "/v1/models":
            self.send_json(200, {"object": "list", "data": [self.card(t) for t in pulled()]})
        elif self.path.startswith("/v1/models/"):
            tag = resolve(self.path.removeprefix("/v1/models/"))
            if tag in pulled():
                self.send_json(200, self.card(tag))
            else:
                self.ollama_not_found(tag)
        else:
            self.send_text(404, "404 page not found")  # gin's answer: no /health, no /metrics

    def ollama_post(self, request: dict) -> None:
        model = resolve(request.get("model") or "")
        if self.path == "/api/pull":
            if request.get("stream") is not False:
                self.send_json(400, {"error": "the stand-in answers pulls with stream false only"})
            elif model not in ollama_registry():
                self.send_json(500, {"error": "pull model manifest: file does not exist"})
            else:
                if model not in pulled():
                    time.sleep(2)  # the download
                    manifest(model).parent.mkdir(parents=True, exist_ok=True)
                    manifest(model).write_text(json.dumps({"schemaVersion": 2, "layers": []}))
                log(f"pulled {model}")
                self.send_json(200, {"status": "success"})
        elif model not in pulled() and self.path.startswith("/api/"):
            self.send_json(404, {"error": f"model '{model}' not found"})
        elif model not in pulled():
            self.ollama_not_found(model)
        elif self.path == "/api/generate" and not request.get("prompt"):
            log(f"loaded {model}")
            self.send_json(200, {"model": model, "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "response": "",
                                 "done": True, "done_reason": "load"})  # fmt: skip
        elif self.path == "/v1/chat/completions":
            log("served")
            self.chat(request, model)
        elif self.path == "/v1/completions":
            log("served")
            self.completion(request, model)
        else:
            self.send_text(404, "404 page not found")

    def do_HEAD(self) -> None:
        self.send_response(200 if KIND == "ollama" and self.path == "/" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        if KIND == "ollama":
            self.ollama_get()
        elif self.path == "/health":
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/metrics":
            data = prometheus_text().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif self.path == "/v1/models" and KIND == "vllm":
            card = {"id": MODEL, "object": "model", "created": int(time.time()), "owned_by": "vllm", "root": MODEL, "parent": None}
            self.send_json(200, {"object": "list", "data": [card]})
        else:
            self.send_json(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        request = self.body()
        if request is None:
            return
        if KIND == "ollama":
            self.ollama_post(request)
            return
        route = (KIND, self.path)
        log("served")  # which server of a kind answered: the gateway balances an LLM's replicas
        SERVED["count"] += 1
        if KIND == "vllm" and self.path.startswith("/v1/") and request.get("model", MODEL) != MODEL:
            self.send_json(404, {"error": {"message": f"The model `{request.get('model')}` does not exist.",
                                           "type": "NotFoundError", "param": "model", "code": 404}})  # fmt: skip
        elif route == ("vllm", "/v1/chat/completions"):
            self.chat(request)
        elif route == ("vllm", "/v1/completions"):
            self.completion(request, MODEL)
        elif self.path == "/v1/embeddings":
            self.openai_embeddings(request)
        elif route == ("tei", "/embed"):
            inputs = request["inputs"] if isinstance(request["inputs"], list) else [request["inputs"]]
            self.send_json(200, [embed(text) for text in inputs])
        elif route == ("tei", "/rerank"):
            scores = [{"index": i, "score": rerank_score(request["query"], t)} for i, t in enumerate(request["texts"])]
            if request.get("return_text"):
                for entry in scores:
                    entry["text"] = request["texts"][entry["index"]]
            self.send_json(200, sorted(scores, key=lambda s: -s["score"]))
        else:
            self.send_json(404, {"detail": "Not Found"})

    def openai_embeddings(self, request: dict) -> None:
        inputs = request["input"] if isinstance(request["input"], list) else [request["input"]]
        data = []
        for i, text in enumerate(inputs):
            vector = embed(text)
            if request.get("encoding_format") == "base64":
                encoded = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
                data.append({"object": "embedding", "embedding": encoded, "index": i})
            else:
                data.append({"object": "embedding", "embedding": vector, "index": i})
        prompt = " ".join(inputs)
        self.send_json(200, {"object": "list", "data": data, "model": MODEL, "usage": usage(prompt)})

    def completion(self, request: dict, model: str) -> None:
        text = reply([{"role": "user", "content": request["prompt"]}])
        self.send_json(200, {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
                             "model": model, "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}],
                             "usage": usage(request["prompt"], text)})  # fmt: skip

    def chat(self, request: dict, model: str = MODEL) -> None:
        text, created, chat_id = reply(request["messages"]), int(time.time()), f"chatcmpl-{uuid.uuid4().hex}"
        prompt = " ".join(m["content"] for m in request["messages"] if isinstance(m.get("content"), str))
        if not request.get("stream"):
            self.send_json(200, {"id": chat_id, "object": "chat.completion", "created": created, "model": model,
                                 "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                              "logprobs": None, "finish_reason": "stop"}],
                                 "usage": usage(prompt, text)})  # fmt: skip
            return
        # Server-sent events as vLLM sends them: a role chunk, one chunk per token, a finish chunk, [DONE].
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def event(delta: dict, finish: str | None = None) -> None:
            chunk = {"id": chat_id, "object": "chat.completion.chunk", "created": created, "model": model,
                     "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}  # fmt: skip
            self.chunk(f"data: {json.dumps(chunk)}\n\n".encode())

        event({"role": "assistant", "content": ""})
        for i, token in enumerate(text.split(" ")):
            event({"content": token if i == 0 else " " + token})
            time.sleep(0.02)
        event({"content": ""}, finish="stop")
        self.chunk(b"data: [DONE]\n\n")
        self.chunk(b"")

    def chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


if __name__ == "__main__":
    log("loading")
    time.sleep(LOAD_SECONDS)
    server = ThreadingHTTPServer((ADDRESS, PORT), Handler)
    log("listening")
    server.serve_forever()
