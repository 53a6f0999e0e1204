"""accounts.json holds salted hashes with mode 0600, never a password."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from racklet.bmc import AccountsError, write_accounts
from racklet.bmc._state.accounts import Accounts, PasswordPolicy, new_password, read_accounts


async def test_accounts_hold_salted_hashes_only(tmp_path: Path) -> None:
    path = tmp_path / "accounts.json"
    write_accounts(path, "admin", "s3cret-pass")
    write_accounts(path, "other", "s3cret-pass", role="ReadOnly")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert "s3cret-pass" not in text
    accounts = Accounts(read_accounts(path))
    admin = await accounts.verify("admin", "s3cret-pass")
    assert admin is not None and admin.role == "Administrator"
    assert await accounts.verify("admin", "wrong") is None
    assert await accounts.verify("nobody", "s3cret-pass") is None
    raw = [a._hash for a in read_accounts(path)]
    assert raw[0] != raw[1]  # same password, different salt


def test_rewriting_an_account_replaces_it(tmp_path: Path) -> None:
    path = tmp_path / "accounts.json"
    write_accounts(path, "admin", "first")
    write_accounts(path, "admin", "second")
    (account,) = read_accounts(path)
    assert account.check("second") and not account.check("first")


def test_bad_roles_and_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(AccountsError, match="role"):
        write_accounts(tmp_path / "a.json", "admin", "pw", role="God")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(AccountsError, match=r"broken\.json"):
        read_accounts(tmp_path / "broken.json")


def test_a_new_password_is_never_taken_for_an_option(monkeypatch: pytest.MonkeyPatch) -> None:
    """DMTF's rf_* tools (argparse) read ``-p -x…`` as a missing value: a docs page failed so."""
    drawn = iter(["-starts-with-a-dash", "_fine-password-000"])
    monkeypatch.setattr("racklet.bmc._state.accounts.secrets.token_urlsafe", lambda _n: next(drawn))
    assert new_password() == "_fine-password-000"
    monkeypatch.undo()
    assert PasswordPolicy().problem(new_password()) is None  # and the BMC takes it
