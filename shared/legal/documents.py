"""The legal documents the gateway serves at `/legal/{name}`.

Only the names in `DOCUMENTS` exist, and each maps to a path chosen here or by the operator's
settings: a name from a request is looked up, never joined to a path. `license` is the
repository's own open-source license (the `LICENSE` file deployed with the app); `eula`,
`terms` and `privacy` are the files named by `QCOS_LEGAL_EULA_FILE`, `QCOS_LEGAL_TERMS_FILE`
and `QCOS_LEGAL_PRIVACY_FILE` (absolute, or relative to the app's directory).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from shared.config import LegalSettings
from shared.errors import InternalError, NotFound

logger = logging.getLogger(__name__)

APP_ROOT = Path(__file__).resolve().parents[2]  # the folder Azure Functions deploys
LICENSE_FILE = APP_ROOT / "LICENSE"
DOCUMENTS = ("license", "eula", "terms", "privacy")
MAX_DOCUMENT_BYTES = 1_048_576
_MEDIA_TYPES = {
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
}
MEDIA_TYPES = ("text/plain", "text/markdown", "text/html")  # every type `read` may answer


@dataclass(frozen=True)
class Document:
    name: str
    text: str
    media_type: str


def path_of(name: str, legal: LegalSettings) -> Path | None:
    """Where document `name` is configured to be (it may not exist); None for a name not in
    `DOCUMENTS` or a document whose setting is unset."""
    configured = {
        "license": str(LICENSE_FILE),
        "eula": legal.eula_file,
        "terms": legal.terms_file,
        "privacy": legal.privacy_file,
    }.get(name)
    return APP_ROOT / configured if configured else None  # an absolute path replaces APP_ROOT


def available(legal: LegalSettings) -> list[str]:
    """The names of the documents whose file exists, in `DOCUMENTS` order."""
    return [name for name in DOCUMENTS if (path := path_of(name, legal)) and path.is_file()]


def read(name: str, legal: LegalSettings) -> Document:
    """Document `name` as text (UTF-8; undecodable bytes replaced), its media type from its
    file's extension (`.md` Markdown, `.html` HTML, anything else plain text).

    Raises `NotFound` (DOCUMENT_NOT_FOUND) for an unknown name, an unset setting or a missing
    file, and `InternalError` for a file over `MAX_DOCUMENT_BYTES` (a configuration mistake).
    """
    path = path_of(name, legal)
    try:
        if path is None:
            raise FileNotFoundError(name)
        with path.open("rb") as file:
            data = file.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as exc:  # missing, a directory, unreadable
        raise NotFound(
            f"No legal document {name!r}" if name in DOCUMENTS else "Unknown legal document",
            error_code="DOCUMENT_NOT_FOUND",
        ) from exc
    if len(data) > MAX_DOCUMENT_BYTES:
        logger.error("legal document %s is over %d bytes: not served", name, MAX_DOCUMENT_BYTES)
        raise InternalError("The document is too large to serve")
    media_type = _MEDIA_TYPES.get(path.suffix.lower(), "text/plain")
    return Document(name, data.decode("utf-8", errors="replace"), media_type)
