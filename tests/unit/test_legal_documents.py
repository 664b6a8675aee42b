"""`shared.legal.documents`: which documents exist, where each is read from, and how it is typed
(the HTTP answers are in tests/functions/test_legal_api.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.config import LegalSettings
from shared.errors import InternalError, NotFound
from shared.legal.documents import (
    DOCUMENTS,
    MAX_DOCUMENT_BYTES,
    Document,
    eu_member,
    path_of,
    read,
    urls,
)

OPERATOR = LegalSettings(company_name="Example GmbH", address="Hauptstr. 1, 10115 Berlin")


def test_the_four_documents_are_served_here_unless_published_elsewhere() -> None:
    # when / then
    assert urls(LegalSettings(), "https://gw.example.com/") == {
        name: f"https://gw.example.com/legal/{name}" for name in DOCUMENTS
    }
    elsewhere = LegalSettings(documents_url="https://example.com/legal")
    assert urls(elsewhere, "https://gw.example.com")["terms"] == "https://example.com/legal/terms"
    assert set(DOCUMENTS) == {"license", "eula", "terms", "privacy"}


@pytest.mark.parametrize("name", ["eula", "terms", "privacy"])
def test_an_unset_document_is_the_default_text_naming_the_operator(name: str) -> None:
    # when
    document = read(name, OPERATOR)
    # then
    assert document.media_type == "text/markdown"
    assert "Example GmbH (Hauptstr. 1, 10115 Berlin)" in document.text
    assert "$company" not in document.text and "$address" not in document.text


def test_a_default_text_says_when_the_operator_is_not_configured() -> None:
    assert (
        "the operator (not configured) (address not configured)"
        in read("terms", LegalSettings()).text
    )


def test_the_license_is_the_repositorys_own_file_as_plain_text() -> None:
    document = read("license", LegalSettings())
    assert document.media_type == "text/plain" and "MIT License" in document.text
    assert path_of("license", LegalSettings()) == Path(__file__).resolve().parents[2] / "LICENSE"


@pytest.mark.parametrize(
    ("suffix", "media_type"),
    [(".md", "text/markdown"), (".MARKDOWN", "text/markdown"), (".htm", "text/html"),
     (".html", "text/html"), (".txt", "text/plain"), ("", "text/plain"), (".pdf", "text/plain")],
)  # fmt: skip
def test_a_configured_file_is_typed_by_its_extension(
    tmp_path: Path, suffix: str, media_type: str
) -> None:
    # given the operator's own terms
    path = tmp_path / f"terms{suffix}"
    path.write_text("Our terms.", encoding="utf-8")
    # when / then
    assert read("terms", LegalSettings(terms_file=str(path))) == Document(
        "terms", "Our terms.", media_type
    )


def test_undecodable_bytes_are_replaced_not_refused(tmp_path: Path) -> None:
    path = tmp_path / "privacy.txt"
    path.write_bytes(b"Caf\xe9 data")  # Latin-1, not UTF-8
    assert read("privacy", LegalSettings(privacy_file=str(path))).text == "Caf\ufffd data"


@pytest.mark.parametrize("name", ["imprint", "../LICENSE", "LICENSE", "Terms", "", "terms.md"])
def test_only_the_four_names_exist_and_a_name_is_never_a_path(name: str) -> None:
    with pytest.raises(NotFound) as missing:
        read(name, OPERATOR)
    assert missing.value.error_code == "DOCUMENT_NOT_FOUND"
    assert path_of(name, OPERATOR) is None


def test_a_configured_file_that_cannot_be_read_is_not_found(tmp_path: Path) -> None:
    for configured in (tmp_path / "missing.md", tmp_path):  # absent, and a directory
        with pytest.raises(NotFound):
            read("eula", LegalSettings(eula_file=str(configured)))


def test_a_configured_file_over_the_bound_is_an_internal_error(tmp_path: Path) -> None:
    path = tmp_path / "eula.md"
    path.write_bytes(b"x" * (MAX_DOCUMENT_BYTES + 1))
    with pytest.raises(InternalError):
        read("eula", LegalSettings(eula_file=str(path)))
    path.write_bytes(b"x" * MAX_DOCUMENT_BYTES)
    assert len(read("eula", LegalSettings(eula_file=str(path))).text) == MAX_DOCUMENT_BYTES


def test_a_relative_path_is_taken_from_the_apps_directory() -> None:
    assert path_of("terms", LegalSettings(terms_file="legal/terms.md")) == (
        Path(__file__).resolve().parents[2] / "legal" / "terms.md"
    )


@pytest.mark.parametrize(
    ("country", "member"),
    [("Germany", True), ("de", True), (" Czech Republic ", True), ("CZ", True),
     ("Norway", False), ("CH", False), ("United Kingdom", False), ("", False), (None, None)],
)  # fmt: skip
def test_eu_membership_is_read_from_a_name_or_a_two_letter_code(
    country: str | None, member: bool | None
) -> None:
    assert eu_member(country) is member
