"""What the translation engines' tests run against: a tiny real model, packaged as Argos
Translate packages it, and a small LibreTranslate-compatible server in its own process.

The model is a real CTranslate2 Transformer (one layer each side, width 16) with random weights,
over a SentencePiece model trained here on a few lines of English and Russian: it loads and runs
as a real package does, in a fraction of a second, and writes gibberish. The server translates
word by word from a fixed dictionary, leaves every other word (and every placeholder) as it is,
and misbehaves on request: the word `boom` gets a 500, `slow` an answer after 3 s, `garbled` an
answer that is not JSON, `echo` a 400 whose error text quotes the request.

Run as a script, the file serves that server on 127.0.0.1 and prints its port first."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import re
import socket
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

SOURCE, TARGET = "ru", "en"
PACKAGE_NAME = "translate-ru_en"
PACKAGE_VERSION = "0.1-test"
TARGET_PREFIX = "__en__"
CORPUS = [
    "Министр позвонит в полдень.",
    "The minister will call at noon.",
    "Пожалуйста, подтвердите получение этого сообщения.",
    "Please confirm receipt of this message.",
    "Учения начнутся завтра утром.",
    "The exercise begins tomorrow morning.",
    "Линия проверяется каждый час.",
    "The line is tested every hour.",
]
WIDTH, FFN, HEADS = 16, 32, 2


def build_package(parent: Path) -> Path:
    """Write an unpacked Argos-style package under `parent`; return its directory."""
    import ctranslate2.specs  # noqa: PLC0415  # only the offline tests need it
    import sentencepiece  # noqa: PLC0415

    root = parent / f"{PACKAGE_NAME}-0_1"
    (root / "model").mkdir(parents=True)
    proto = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 3),
        model_writer=proto,
        vocab_size=64,
        hard_vocab_limit=False,
        character_coverage=1.0,
        normalization_rule_name="identity",  # keeps the file a few hundred bytes
        user_defined_symbols=[TARGET_PREFIX],
        minloglevel=2,
    )
    (root / "sentencepiece.model").write_bytes(proto.getvalue())
    tokenizer = sentencepiece.SentencePieceProcessor(model_proto=proto.getvalue())
    vocabulary = [tokenizer.id_to_piece(i) for i in range(tokenizer.get_piece_size())]

    spec = ctranslate2.specs.TransformerSpec.from_config(1, HEADS)
    rng = np.random.default_rng(20240601)

    def fill(layer: object, name: str, value: object) -> None:
        if value is None:  # a weight the spec requires
            weights = rng.normal(0, 0.3, _shape(name, len(vocabulary))).astype(np.float32)
            setattr(layer, name.rpartition("/")[2], weights)

    spec._visit(fill)  # the spec's own walk over its variables, as its converters use
    spec.register_source_vocabulary(vocabulary)
    spec.register_target_vocabulary(vocabulary)
    spec.validate()
    spec.save(str(root / "model"))
    metadata = {
        "package_version": PACKAGE_VERSION,
        "argos_version": "1.9",
        "from_code": SOURCE,
        "from_name": "Russian",
        "to_code": TARGET,
        "to_name": "English",
        "target_prefix": TARGET_PREFIX,
        "name": PACKAGE_NAME,
    }
    (root / "metadata.json").write_text(json.dumps(metadata), encoding="utf-8")
    return root


def _shape(name: str, vocabulary: int) -> tuple[int, ...]:
    *_, layer, owner, leaf = ["", "", *name.split("/")]
    if leaf in ("gamma", "beta"):
        return (WIDTH,)
    if owner.startswith("embeddings") or owner == "projection":
        return (vocabulary, WIDTH)
    if layer == "ffn":
        return (FFN, WIDTH) if owner == "linear_0" else (WIDTH, FFN)
    if layer == "self_attention":  # queries, keys and values fused; then the output
        return (3 * WIDTH, WIDTH) if owner == "linear_0" else (WIDTH, WIDTH)
    if layer == "attention":  # queries; keys and values fused; the output
        return (2 * WIDTH, WIDTH) if owner == "linear_1" else (WIDTH, WIDTH)
    raise AssertionError(f"no shape for {name}")


def pack(package: Path, archive: Path) -> Path:
    """Zip a package directory as Argos does: one top-level directory inside."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(package.rglob("*")):
            zf.write(path, path.relative_to(package.parent).as_posix())
    return archive


# The server ----------------------------------------------------------------------------------

DICTIONARY = {
    ("en", "ru"): {
        "minister": "министр",
        "will": "будет",
        "call": "звонить",
        "at": "в",
        "noon": "полдень",
        "the": "",
        "please": "пожалуйста",
        "confirm": "подтвердите",
    },
}
DICTIONARY[("ru", "en")] = {v: k for k, v in DICTIONARY[("en", "ru")].items() if v}
DICTIONARY[("zh-Hant", "en")] = {"中文": "Chinese"}  # a code in mixed case, as LibreTranslate's


def make_app(api_key: str | None) -> Starlette:
    async def languages(request: Request) -> Response:
        return JSONResponse(
            [
                {"code": "en", "name": "English", "targets": ["en", "ru"]},
                {"code": "ru", "name": "Russian", "targets": ["en", "ru"]},
                {"code": "zh-Hant", "name": "Chinese (Traditional)", "targets": ["en"]},
            ]
        )

    async def translate(request: Request) -> Response:
        body = await request.json()
        if api_key is not None and body.get("api_key") != api_key:
            return JSONResponse({"error": "Invalid API key"}, status_code=403)
        q, pair = body["q"], (body["source"], body["target"])
        if pair not in DICTIONARY or body.get("format") != "text":
            return JSONResponse({"error": f"{pair[0]}-{pair[1]} is not supported"}, 400)
        words = set(q.lower().split())
        if "boom" in words:
            return JSONResponse({"error": "Internal error"}, status_code=500)
        if "slow" in words:
            await asyncio.sleep(3)
        if "garbled" in words:
            return PlainTextResponse("<html>not json</html>")
        if "echo" in words:
            return JSONResponse({"error": f"cannot translate: {q}"}, status_code=400)
        table = DICTIONARY[pair]

        def word(match: re.Match[str]) -> str:
            found = match.group(0)
            rendering = table.get(found.lower(), found)
            return rendering.capitalize() if found[0].isupper() else rendering

        return JSONResponse({"translatedText": re.sub(r"[^\W\d_]+", word, q)})

    return Starlette(
        routes=[Route("/languages", languages), Route("/translate", translate, methods=["POST"])]
    )


@contextmanager
def running_server(api_key: str | None, tls: tuple[Path, Path] | None = None) -> Iterator[str]:
    """Start the server in its own process on 127.0.0.1 (over TLS with `tls`, a certificate and
    its key); yield its base URL; stop it."""
    command = [sys.executable, __file__] + (["--api-key", api_key] if api_key else [])
    if tls is not None:
        command += ["--cert", str(tls[0]), "--key", str(tls[1])]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("port "):
            raise RuntimeError(f"the test translation server did not start: {line!r}")
        scheme = "https" if tls else "http"
        yield f"{scheme}://127.0.0.1:{int(line.split()[1])}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def unused_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--api-key")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    args = parser.parse_args()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)  # connections made before uvicorn is up wait in the backlog
    print(f"port {sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(
        make_app(args.api_key),
        log_level="warning",
        lifespan="off",
        ssl_certfile=args.cert,
        ssl_keyfile=args.key,
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
