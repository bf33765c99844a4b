#!/usr/bin/python3
"""A stand-in for vLLM's or TEI's HTTP server, in the container: their API shapes, with a toy model.

fake_service.py vllm|tei ADDRESS PORT MODEL PAYLOAD_LIMIT NAME

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

KIND, ADDRESS, PORT, MODEL, PAYLOAD_LIMIT, NAME = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), sys.argv[6]
DIMENSIONS = 16
LOAD_SECONDS = 4
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

    def do_GET(self) -> None:
        if self.path == "/health":
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
        route = (KIND, self.path)
        log("served")  # which server of a kind answered: the gateway balances an LLM's replicas
        SERVED["count"] += 1
        if KIND == "vllm" and self.path.startswith("/v1/") and request.get("model", MODEL) != MODEL:
            self.send_json(404, {"error": {"message": f"The model `{request.get('model')}` does not exist.",
                                           "type": "NotFoundError", "param": "model", "code": 404}})  # fmt: skip
        elif route == ("vllm", "/v1/chat/completions"):
            self.chat(request)
        elif route == ("vllm", "/v1/completions"):
            text = reply([{"role": "user", "content": request["prompt"]}])
            self.send_json(200, {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
                                 "model": MODEL, "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}],
                                 "usage": usage(request["prompt"], text)})  # fmt: skip
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

    def chat(self, request: dict) -> None:
        text, created, chat_id = reply(request["messages"]), int(time.time()), f"chatcmpl-{uuid.uuid4().hex}"
        prompt = " ".join(m["content"] for m in request["messages"] if isinstance(m.get("content"), str))
        if not request.get("stream"):
            self.send_json(200, {"id": chat_id, "object": "chat.completion", "created": created, "model": MODEL,
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
            chunk = {"id": chat_id, "object": "chat.completion.chunk", "created": created, "model": MODEL,
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
