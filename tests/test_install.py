"""A non-editable install works from a read-only folder: `pip install .`, then the CLI run from
another directory, with numba's compiled kernels cached in a writable folder, not the package's."""

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def read_only(folder: Path, on: bool) -> None:
    for path in [folder, *folder.rglob("*")]:
        if not path.is_symlink():
            mode = path.stat().st_mode
            path.chmod(mode & ~0o222 if on else mode | stat.S_IWUSR)


@pytest.mark.slow
def test_installed_read_only_package_trains_from_another_directory(tmp_path):
    # build from a copy: setuptools leaves build/ beside the sources, and a stale build/ in the
    # checkout would be installed too
    project, site = tmp_path / "project", tmp_path / "site"
    shutil.copytree(ROOT / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, project / name)
    # no build isolation: the build backend (setuptools) comes from this environment, so no network
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(project)], check=True, capture_output=True)
    work, cache, home = tmp_path / "elsewhere", tmp_path / "cache", tmp_path / "home"
    for folder in (work, home):
        folder.mkdir()
    # the installed copy shadows the checkout's editable install; a read-only home, as in containers
    env = {**os.environ, "PYTHONPATH": str(site), "SPIKEROLL_CACHE": str(cache), "HOME": str(home),
           "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("NUMBA_CACHE_DIR", None)
    read_only(site, True)
    read_only(home, True)
    try:
        where = subprocess.run([sys.executable, "-c", "import spikeroll; print(spikeroll.__file__)"], cwd=work,
                               env=env, check=True, capture_output=True, text=True).stdout
        assert Path(where.strip()).is_relative_to(site)
        run = subprocess.run([str(site / "bin" / "spikeroll"), "train", "--generations", "2", "--population", "4",
                              "--hidden", "8", "--batch-size", "8", "--out", "run", "--quiet"],
                             cwd=work, env=env, capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stderr[-2000:]
    finally:
        read_only(site, False)
        read_only(home, False)
    assert (work / "run" / "report.json").is_file()
    compiled = list((cache / "numba").rglob("*.nbi"))  # numba's index of a cached kernel
    assert compiled and all("kernels" in p.name for p in compiled)
    assert not [p for p in site.rglob("*") if p.suffix in (".nbi", ".nbc")]  # nothing written into the package


def test_kernel_cache_folder_follows_spikeroll_cache_then_falls_back(tmp_path, monkeypatch):
    numba = pytest.importorskip("numba")
    from spikeroll.nets import kernels

    monkeypatch.setattr(numba.config, "CACHE_DIR", "")  # the user chose no folder
    monkeypatch.setenv("SPIKEROLL_CACHE", str(tmp_path / "cache"))
    assert kernels.jit_cache_dir() == str(tmp_path / "cache" / "numba")
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # a folder cannot be made inside a file, even by root
    monkeypatch.setenv("SPIKEROLL_CACHE", str(blocker))
    (tmp_path / "tmp").mkdir()  # the system temp folder
    monkeypatch.setattr(kernels.tempfile, "tempdir", str(tmp_path / "tmp"))
    assert kernels.jit_cache_dir() == str(tmp_path / "tmp" / f"spikeroll-{os.getuid()}" / "numba")
    assert (tmp_path / "tmp" / f"spikeroll-{os.getuid()}").stat().st_mode & 0o777 == 0o700
    monkeypatch.setattr(kernels.tempfile, "tempdir", str(blocker))
    assert kernels.jit_cache_dir() is None  # nowhere to write: the kernels compile without a cache
    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path / "mine"))  # NUMBA_CACHE_DIR wins
    assert kernels.jit_cache_dir() == str(tmp_path / "mine")


def test_cached_njit_caches_in_spikeroll_cache_and_leaves_numba_setting(tmp_path, monkeypatch):
    numba = pytest.importorskip("numba")
    from spikeroll.nets import kernels

    monkeypatch.setattr(numba.config, "CACHE_DIR", "")
    monkeypatch.setenv("SPIKEROLL_CACHE", str(tmp_path))

    @kernels.cached_njit()
    def twice(x):
        return 2 * x

    assert numba.config.CACHE_DIR == "" and twice(21) == 42  # compiled, and saved on first call
    assert list((tmp_path / "numba").rglob("*twice*.nbi"))


@pytest.mark.parametrize("plant", ["world-writable", "other-owner", "symlink"])
def test_kernel_cache_fallback_refuses_a_planted_folder(tmp_path, monkeypatch, plant):
    """Another user who creates spikeroll-<uid> in the shared temp folder first must not get their
    pickled cache files loaded: such a folder is refused and the kernels compile in memory."""
    numba = pytest.importorskip("numba")
    from spikeroll.nets import kernels

    monkeypatch.setattr(numba.config, "CACHE_DIR", "")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("SPIKEROLL_CACHE", str(blocker))  # spikeroll's own folder is unusable
    shared = tmp_path / "tmp"
    shared.mkdir()
    monkeypatch.setattr(kernels.tempfile, "tempdir", str(shared))
    planted = shared / f"spikeroll-{os.getuid()}"
    if plant == "symlink":
        (tmp_path / "elsewhere").mkdir()
        planted.symlink_to(tmp_path / "elsewhere")
    else:
        planted.mkdir()
        os.chmod(planted, 0o777)
        if plant == "other-owner":
            if os.getuid() != 0:
                pytest.skip("needs root to give the folder to another user")
            os.chmod(planted, 0o700)
            os.chown(planted, 12345, 12345)
    assert kernels.jit_cache_dir() is None
