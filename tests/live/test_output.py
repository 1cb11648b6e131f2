"""The live window: closing it ends the session; a window still being mapped does not."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from screener.live.output import Window


@pytest.fixture
def window_states(monkeypatch):
    """A fake window whose visibility follows a script, one value per getWindowProperty."""
    states: list[float] = []
    monkeypatch.setattr(cv2, "namedWindow", lambda *a: None)
    monkeypatch.setattr(cv2, "imshow", lambda *a: None)
    monkeypatch.setattr(cv2, "waitKey", lambda *a: -1)
    monkeypatch.setattr(cv2, "getWindowProperty", lambda *a: states.pop(0))
    return states


def frame() -> SimpleNamespace:
    return SimpleNamespace(image=np.zeros((8, 8, 3), np.uint8))


def test_a_window_not_yet_on_screen_on_a_busy_machine_keeps_the_session_going(window_states):
    window_states.extend([0.0, 0.0, 0.0, 1.0, 1.0])
    window = Window()
    assert all(window.show(frame()) for _ in range(5))


def test_closing_the_window_once_it_was_shown_ends_the_session(window_states):
    window_states.extend([0.0, 1.0, 1.0, 0.0])
    window = Window()
    assert [window.show(frame()) for _ in range(4)] == [True, True, True, False]


def test_idle_before_the_first_frame_does_not_read_as_closed(window_states):
    window = Window()
    assert window.idle()
