"""TOML configs: read with tomllib on 3.11+ and with tomli on 3.10 (hidden tomllib simulates 3.10)."""

import sys

import pytest

from spikeroll.config import TrainConfig
from spikeroll.errors import SpikerollError

TOML = '''# a run's settings
dataset = "digits"
hidden = [32, 16]
population = 64
sigma = 0.05
lr_schedule = "cosine"
sigma_final = 2.5e-2
'''
EXPECTED = dict(dataset="digits", hidden=[32, 16], population=64, sigma=0.05, lr_schedule="cosine", sigma_final=0.025)


def read(tmp_path, text=TOML):
    path = tmp_path / "run.toml"
    path.write_text(text)
    return TrainConfig.from_file(path)


def check(cfg):
    assert {k: getattr(cfg, k) for k in EXPECTED} == EXPECTED
    assert cfg.rank == TrainConfig().rank  # unset keys keep their defaults


def test_toml_config(tmp_path):
    check(read(tmp_path).validate())


def test_toml_config_on_python_310(tmp_path, monkeypatch):
    pytest.importorskip("tomli")  # installed by the dev extra; a dependency on 3.10
    monkeypatch.setitem(sys.modules, "tomllib", None)  # `import tomllib` now fails, as on 3.10
    check(read(tmp_path))


def test_toml_without_any_parser_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tomllib", None)
    monkeypatch.setitem(sys.modules, "tomli", None)
    with pytest.raises(SpikerollError, match="pip install 'tomli>=1.1'"):
        read(tmp_path)


def test_bad_toml_is_one_clear_error(tmp_path):
    with pytest.raises(SpikerollError, match="not valid JSON/TOML"):
        read(tmp_path, 'population = \n')
