import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from screener.storage.locking import LockError, LockTimeout, exclusive_scan, lock_path_for

HOLD = """
import sys, time
from screener.storage.locking import exclusive_scan
with exclusive_scan(sys.argv[1], 5):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def hold_lock(url: str, seconds: float) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", HOLD, url, str(seconds)],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "locked"
    return process


def test_lock_file_sits_beside_a_sqlite_database(tmp_path: Path):
    assert lock_path_for(f"sqlite:///{tmp_path}/a.db") == tmp_path / "a.db.lock"
    assert lock_path_for("sqlite:///:memory:") is None
    assert lock_path_for("postgresql://u@h/db") is None


def test_a_second_scan_waits_for_the_first(tmp_path: Path):
    url = f"sqlite:///{tmp_path}/a.db"
    holder = hold_lock(url, 1.5)
    messages: list[str] = []
    started = time.monotonic()
    with exclusive_scan(url, 30, messages.append):
        waited = time.monotonic() - started
    holder.wait()
    assert waited >= 0.5
    assert messages and "waiting" in messages[0] and "pid" in messages[0]


def test_waiting_too_long_is_a_clear_error(tmp_path: Path):
    url = f"sqlite:///{tmp_path}/a.db"
    holder = hold_lock(url, 5)
    try:
        with pytest.raises(LockTimeout, match="still holds"), exclusive_scan(url, 0.3):
            pass
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_is_free_again_after_a_scan(tmp_path: Path):
    url = f"sqlite:///{tmp_path}/a.db"
    with exclusive_scan(url, 1):
        pass
    with exclusive_scan(url, 0):
        pass


@pytest.mark.parametrize("url", ["postgresql://u:pw@host/db", "postgresql+psycopg://u@h/db",
                                 "sqlite:///:memory:", "sqlite://"])
def test_databases_without_a_file_take_no_lock_and_never_wait(url: str, tmp_path: Path,
                                                               monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert lock_path_for(url) is None
    with exclusive_scan(url, 0), exclusive_scan(url, 0):  # a second scan at once is fine
        pass
    assert list(tmp_path.iterdir()) == []


def test_the_lock_file_is_private_and_no_folder_is_made_for_it(tmp_path: Path):
    with exclusive_scan(f"sqlite:///{tmp_path}/a.db", 1):
        pass
    assert stat.S_IMODE((tmp_path / "a.db.lock").stat().st_mode) == 0o600
    with pytest.raises(LockError, match="no folder"), exclusive_scan(
            f"sqlite:///{tmp_path}/no/a.db", 1):
        pass
    assert not (tmp_path / "no").exists()


def without_root_powers(command: list[str]) -> list[str]:
    """Root ignores file permissions: as root (CI) the command runs without the capabilities
    that bypass them, as an ordinary user's cron job would."""
    import os
    import shutil

    if os.geteuid() != 0:
        return command
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: permissions do not stop root")
    caps = "-dac_override,-dac_read_search,-fowner"
    return [setpriv, f"--bounding-set={caps}", f"--inh-caps={caps}", *command]


def run_unprivileged(*args: str) -> subprocess.CompletedProcess:
    command = without_root_powers([sys.executable, "-m", "screener", *args])
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if result.stderr.startswith("setpriv:"):
        pytest.skip(f"cannot drop capabilities here: {result.stderr.strip()}")
    return result


def test_a_lock_file_this_user_cannot_write_is_one_line_not_a_traceback(tmp_path: Path):
    lock = tmp_path / "a.db.lock"
    lock.write_text("")
    lock.chmod(0o444)
    (tmp_path / "videos").mkdir()
    result = run_unprivileged("scan", str(tmp_path / "videos"), "--out", str(tmp_path / "out"),
                              "--db", f"sqlite:///{tmp_path}/a.db", "--quiet")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.strip().splitlines() == [
        f"error: cannot use the lock file {lock}: Permission denied (the scan takes it beside "
        "the database; this user must be able to write there)"]

