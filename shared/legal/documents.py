"""The legal documents the gateway serves at `/legal/{name}`, and where `/legal` says they are.

Only the names in `DOCUMENTS` exist, and each maps to a path chosen here or by the operator's
settings: a name from a request is looked up, never joined to a path. `license` is the
repository's own open-source license (the `LICENSE` file deployed with the app); `eula`,
`terms` and `privacy` are the files named by `QCOS_LEGAL_EULA_FILE`, `QCOS_LEGAL_TERMS_FILE`
and `QCOS_LEGAL_PRIVACY_FILE` (absolute, or relative to the app's directory), or, unset, the
gateway's default texts (`texts/<name>.md`) with the operator's name and address filled in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from string import Template

from shared.config import LegalSettings
from shared.errors import InternalError, NotFound

logger = logging.getLogger(__name__)

APP_ROOT = Path(__file__).resolve().parents[2]  # the folder Azure Functions deploys
LICENSE_FILE = APP_ROOT / "LICENSE"
DEFAULTS_DIR = Path(__file__).resolve().parent / "texts"
DOCUMENTS = ("license", "eula", "terms", "privacy")
MAX_DOCUMENT_BYTES = 1_048_576
_MEDIA_TYPES = {
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
}
MEDIA_TYPES = ("text/plain", "text/markdown", "text/html")  # every type `read` may answer
UNSET = "the operator (not configured)"

# The member states of the European Union, by English name and ISO 3166 alpha-2 code
EU_MEMBERS = frozenset(
    name.strip().lower()
    for name in (
        "Austria, AT, Belgium, BE, Bulgaria, BG, Croatia, HR, Cyprus, CY, Czechia, "
        "Czech Republic, CZ, Denmark, DK, Estonia, EE, Finland, FI, France, FR, Germany, DE, "
        "Greece, GR, Hungary, HU, Ireland, IE, Italy, IT, Latvia, LV, Lithuania, LT, "
        "Luxembourg, LU, Malta, MT, Netherlands, NL, Poland, PL, Portugal, PT, Romania, RO, "
        "Slovakia, SK, Slovenia, SI, Spain, ES, Sweden, SE"
    ).split(",")
)


@dataclass(frozen=True)
class Document:
    name: str
    text: str
    media_type: str


def eu_member(country: str | None) -> bool | None:
    """Whether `country` (a name or an alpha-2 code) is an EU member state; None: unset."""
    return None if country is None else country.strip().lower() in EU_MEMBERS


def urls(legal: LegalSettings, base_url: str) -> dict[str, str]:
    """Every document's URL: under `legal.documents_url` when set, else this deployment's
    `/legal/<name>` under `base_url` (scheme and host of the request)."""
    root = legal.documents_url or f"{base_url.rstrip('/')}/legal"
    return {name: f"{root}/{name}" for name in DOCUMENTS}


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


def read(name: str, legal: LegalSettings) -> Document:
    """Document `name` as text (UTF-8; undecodable bytes replaced), its media type from its
    file's extension (`.md` Markdown, `.html` HTML, anything else plain text). A document
    whose setting is unset is the default text.

    Raises `NotFound` (DOCUMENT_NOT_FOUND) for an unknown name or a configured file that is
    missing, and `InternalError` for a file over `MAX_DOCUMENT_BYTES` (a configuration mistake).
    """
    if name not in DOCUMENTS:
        raise NotFound("Unknown legal document", error_code="DOCUMENT_NOT_FOUND")
    path = path_of(name, legal)
    if path is None:
        return _default(name, legal)
    try:
        with path.open("rb") as file:
            data = file.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as exc:  # missing, a directory, unreadable
        logger.error("legal document %s: its configured file cannot be read", name)
        raise NotFound(f"No legal document {name!r}", error_code="DOCUMENT_NOT_FOUND") from exc
    if len(data) > MAX_DOCUMENT_BYTES:
        logger.error("legal document %s is over %d bytes: not served", name, MAX_DOCUMENT_BYTES)
        raise InternalError("The document is too large to serve")
    media_type = _MEDIA_TYPES.get(path.suffix.lower(), "text/plain")
    return Document(name, data.decode("utf-8", errors="replace"), media_type)


def _default(name: str, legal: LegalSettings) -> Document:
    text = (DEFAULTS_DIR / f"{name}.md").read_text(encoding="utf-8")
    filled = Template(text).safe_substitute(
        company=legal.company_name or UNSET, address=legal.address or "address not configured"
    )
    return Document(name, filled, "text/markdown")
