"""`screener train`'s settings refuse what would break a run before it starts."""

import pytest

from screener.lab.train_settings import TrainSettings
from screener.settings import SettingsError


@pytest.mark.parametrize("batch_size", [4, 8, 64, 256])
def test_train_settings_accept_batch_sizes_that_are_multiples_of_four(batch_size):
    TrainSettings(batch_size=batch_size).validate()  # raises on failure
    assert TrainSettings(batch_size=batch_size).batch_size % 4 == 0


@pytest.mark.parametrize("batch_size", [0, -4, 1, 6, 30, 65])
def test_train_settings_reject_other_batch_sizes(batch_size):
    with pytest.raises(SettingsError, match="multiple of 4"):
        TrainSettings(batch_size=batch_size).validate()


def test_train_settings_reject_non_positive_epochs():
    with pytest.raises(SettingsError, match="epochs"):
        TrainSettings(epochs=0).validate()
