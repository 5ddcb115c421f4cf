"""The CLI offers exactly the choices the library accepts: one list per option, defined in the library."""

import click
import pytest

from spikeroll.cli import main
from spikeroll.config import TrainConfig
from spikeroll.data import load_dataset
from spikeroll.errors import SpikerollError

# option -> the config field it sets
FIELDS = {"--dataset": "dataset", "--reset": "reset", "--readout": "readout", "--strategy": "strategy",
          "--shaping": "shaping", "--optimizer": "optimizer", "--lr-schedule": "lr_schedule", "--neuron": "neuron",
          "--worker-data": "worker_data", "--objective": "objective"}


def cli_choices(command: click.Command, flag: str) -> tuple:
    (param,) = [p for p in command.params if flag in p.opts]
    assert isinstance(param.type, click.Choice), f"{flag} is not a choice"
    return tuple(param.type.choices)


def refusal(flag: str) -> str:
    """The library's own error for a value it does not know: its list follows 'choose one of'."""
    try:
        if flag == "--dataset":  # datasets are checked by the loader, not by the config
            load_dataset("no-such-choice")
        TrainConfig(**{FIELDS[flag]: "no-such-choice"}).validate()
    except SpikerollError as e:
        return str(e)
    raise AssertionError(f"the library accepted an unknown {flag}")


@pytest.mark.parametrize("flag", sorted(FIELDS))
def test_the_cli_offers_exactly_what_the_library_accepts(flag):
    choices = cli_choices(main.commands["train"], flag)
    assert len(choices) >= 2
    for value in choices:  # the config knows every value the CLI offers (some need other settings too)...
        try:
            TrainConfig(**{FIELDS[flag]: value}).validate()
        except SpikerollError as e:
            assert "choose one of" not in str(e), e
    # ...and the library's refusal names exactly the CLI's list
    assert refusal(flag).rsplit("choose one of", 1)[1].strip(" :") == ", ".join(choices)


def test_eval_and_stats_offer_the_same_datasets():
    train = cli_choices(main.commands["train"], "--dataset")
    assert cli_choices(main.commands["eval"], "--dataset") == train
    assert cli_choices(main.commands["data"].commands["stats"], "--dataset") == train


def test_every_choice_option_of_train_is_checked_here():
    choices = {p.opts[0] for p in main.commands["train"].params if isinstance(p.type, click.Choice)}
    assert choices == set(FIELDS)  # a new choice option: import its tuple in cli.py and add it to FIELDS
