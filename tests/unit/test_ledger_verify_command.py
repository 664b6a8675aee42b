"""`python -m shared.ledger.verify BUNDLE.json [--public-key B64]`: exit 0 valid, 1 invalid, 2
unreadable file or wrong usage."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from shared.ledger.evidence import build_bundle
from shared.ledger.models import GENESIS, LedgerEntry
from shared.ledger.verify import main
from shared.signing import new_private_key, public_b64

KEY = new_private_key()
ROOT = Path(__file__).resolve().parents[2]


def sealed_chain(user_id: str, length: int) -> list[LedgerEntry]:
    chain: list[LedgerEntry] = []
    for seq in range(1, length + 1):
        entry = LedgerEntry(
            user_id=user_id,
            job_id=f"{user_id}-job-{seq}",
            seq=0,
            time="2026-11-21T08:00:00.000Z",
            tenant="acme",
            project="",
            supplier="local",
            backend="aer_simulator",
            mode="local",
            shots=100,
            cost="0",
            currency="USD",
            list_cost="0",
            price_source="local simulator",
        )
        chain.append(entry.sealed(seq, chain[-1].hash if chain else GENESIS))
    return chain


def bundle_file(tmp_path: Path, lengths: dict[str, int], *, ephemeral: bool = False) -> Path:
    chains = {user: sealed_chain(user, n) for user, n in lengths.items()}
    bundle = build_bundle(
        [e for chain in chains.values() for e in chain],
        chains,
        bundle_id="bundle-1",
        created_at="2026-11-30T12:00:00.000Z",
        period_from="2026-11-01T00:00:00.000Z",
        period_to="2026-12-01T00:00:00.000Z",
        tenant="acme",
        key=KEY,
        key_ephemeral=ephemeral,
    )
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle), encoding="utf-8")
    return path


def edit(path: Path, change: Any) -> None:
    bundle = json.loads(path.read_text(encoding="utf-8"))
    change(bundle)
    path.write_text(json.dumps(bundle), encoding="utf-8")


def test_a_valid_bundle_exits_0_and_says_what_it_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given
    path = bundle_file(tmp_path, {"alice": 2, "bob": 1})
    # when
    status = main([str(path)])
    # then
    assert status == 0
    assert capsys.readouterr().out == (
        f"valid: 3 entries in 2 chains, signed by {public_b64(KEY)} (configured)\n"
    )


def test_a_bundle_signed_by_an_ephemeral_key_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given
    path = bundle_file(tmp_path, {"alice": 1}, ephemeral=True)
    # when
    status = main([str(path), "--public-key", public_b64(KEY)])
    # then
    assert status == 0
    assert capsys.readouterr().out == (
        f"valid: 1 entry in 1 chain, signed by {public_b64(KEY)} (ephemeral)\n"
    )


def test_a_tampered_bundle_exits_1_and_lists_its_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given one entry's shots changed in the file
    path = bundle_file(tmp_path, {"alice": 2})
    edit(path, lambda b: b["chains"][0]["entries"][1].update(shots=1))
    # when
    status = main([str(path)])
    # then
    out = capsys.readouterr().out
    assert status == 1
    assert out.startswith("invalid: 3 problems\n")
    assert "  the signature does not verify with the bundle's own public key\n" in out
    assert "  chain 'alice': entry 2: hash does not match its fields\n" in out
    assert "  totals.shots is 200, the entries give 101\n" in out


def test_a_wrong_public_key_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # given
    path = bundle_file(tmp_path, {"alice": 1})
    # when
    status = main([str(path), "--public-key", public_b64(new_private_key())])
    # then
    assert status == 1
    assert "the signature does not verify with the given public key" in capsys.readouterr().out


def test_a_json_file_that_is_no_bundle_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given
    path = tmp_path / "list.json"
    path.write_text("[1, 2, 3]", encoding="utf-8")
    # when / then
    assert main([str(path)]) == 1
    assert "the bundle is not a JSON object" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("name", "content"),
    [("missing.json", None), ("broken.json", b'{"format": '), ("latin1.json", b'{"id": "\xe9"}')],
)
def test_an_unreadable_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: bytes | None
) -> None:
    # given a file that does not exist, is not JSON, or is not UTF-8
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    # when
    status = main([str(path)])
    # then
    assert status == 2
    assert capsys.readouterr().err.startswith(f"cannot read {path}: ")


@pytest.mark.parametrize("argv", [[], ["a.json", "b.json"], ["a.json", "--public-key"], ["--x"]])
def test_wrong_usage_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    # given / when
    status = main(argv)
    # then
    assert status == 2
    assert "usage: python -m shared.ledger.verify" in capsys.readouterr().err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    # given / when / then
    assert main(["--help"]) == 0
    assert "--public-key" in capsys.readouterr().out


def test_the_module_runs_as_a_command(tmp_path: Path) -> None:
    # given
    path = bundle_file(tmp_path, {"alice": 1})
    # when
    valid = subprocess.run(
        [sys.executable, "-m", "shared.ledger.verify", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    missing = subprocess.run(
        [sys.executable, "-m", "shared.ledger.verify", str(tmp_path / "none.json")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    # then
    assert (valid.returncode, valid.stdout.split(":")[0]) == (0, "valid")
    assert missing.returncode == 2
