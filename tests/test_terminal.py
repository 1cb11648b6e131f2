import logging

from screener.terminal import PrintableFormatter, printable, printable_lines


def test_control_and_bidi_characters_are_shown_escaped():
    assert printable("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert printable("\x1b]0;title\x07") == "\\x1b]0;title\\x07"
    assert printable("x\x9bc") == "x\\x9bc"  # the one-byte CSI of C1
    assert printable("alex\u202egpj.mp4") == "alex\\u202egpj.mp4"
    assert printable("a\nb\tc\rd") == "a\\nb\\tc\\rd"
    assert printable("bad\udcff.mp4") == "bad\\xff.mp4"  # a non-UTF-8 byte of a file name


def test_ordinary_text_in_any_script_is_left_alone():
    for text in ("Zoë Ångström", "学生_2026-01-01.mp4", "محمد", "emoji 🙂", "a b  c"):
        assert printable(text) == text


def test_lines_keep_their_breaks_and_each_is_escaped():
    assert printable_lines("one\x1b[2J\ntwo\x07") == "one\\x1b[2J\ntwo\\x07"


def test_log_lines_are_escaped():
    record = logging.LogRecord("screener.scanning.scan", logging.WARNING, __file__, 1,
                               "skipped %s: %s", ("/v/\x1b]0;owned\x07.mp4", "broken"), None)
    line = PrintableFormatter("%(levelname)s %(message)s").format(record)
    assert line == "WARNING skipped /v/\\x1b]0;owned\\x07.mp4: broken"
