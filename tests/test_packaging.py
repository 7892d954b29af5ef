"""The install layout: envs/ and conf/ live at the top level but install inside the package."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_for_installation() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {
        ".".join(("rlmusic", *p.parent.relative_to(ROOT / "rlmusic").parts)).rstrip(".")
        for p in (ROOT / "rlmusic").rglob("__init__.py")
    }
    assert on_disk <= listed, f"add to [tool.setuptools] packages: {sorted(on_disk - listed)}"
    assert config["package-dir"]["rlmusic.envs"] == "envs"
    assert config["package-dir"]["rlmusic.conf"] == "conf"


def _fresh_env_with_our_deps(where: Path) -> Path:
    """A venv without rlmusic that still sees this environment's dependencies.

    The dependencies come in through a plain path line in a .pth file, so this environment's
    own editable install of rlmusic (a finder hook loaded by its own .pth) is not carried over.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    python = where / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(site, "_rlmusic_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def _install_and_locate(tmp_path: Path, editable: bool) -> tuple[str, str]:
    python = _fresh_env_with_our_deps(tmp_path / "venv")
    args = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q"]
    args += ["-e", str(ROOT)] if editable else [str(ROOT)]
    subprocess.run(args, check=True, cwd=tmp_path)
    probe = (
        "import gymnasium, rlmusic.envs, rlmusic.conf, importlib.resources as r;"
        "print(rlmusic.envs.__file__);"
        "print(r.files('rlmusic.conf').joinpath('prepare_data.yaml').is_file())"
    )
    out = subprocess.run(
        [python, "-c", probe], check=True, capture_output=True, text=True, cwd=tmp_path
    )
    envs_file, has_conf = out.stdout.split()
    return envs_file, has_conf


@pytest.mark.parametrize("editable", [False, True], ids=["regular", "editable"])
def test_rlmusic_envs_imports_after_install(tmp_path: Path, editable: bool) -> None:
    envs_file, has_conf = _install_and_locate(tmp_path, editable)
    if editable:
        assert Path(envs_file) == ROOT / "envs" / "__init__.py"
    else:
        assert Path(envs_file).is_relative_to(tmp_path / "venv")
        assert (
            Path(envs_file).parent.name == "envs"
            and Path(envs_file).parent.parent.name == "rlmusic"
        )
    assert has_conf == "True"
