import dataclasses
import sys
from pathlib import Path

import pytest

from screener.resources import resource_path
from screener.settings import (
    DEFAULT_MODEL_FILE,
    Settings,
    SettingsError,
    default_database_url,
    load_settings,
)


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "screener.toml"
    path.write_text(text, encoding="utf-8")
    return path


def settings_error(tmp_path: Path, text: str) -> tuple[str, Path]:
    path = config(tmp_path, text)
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    return str(info.value), path


def test_defaults():
    s = Settings()
    assert s.keyframes.every_s == 1.0
    assert s.keyframes.cut_threshold == 27.0
    assert s.faces.detector == "yunet"
    assert s.faces.crop_scale == 0.9
    assert s.faces.min_neighbors == 5
    assert s.faces.keep_all is False
    assert s.emotions.model_path is None
    assert s.emotions.batch_size == 64
    assert s.emotions.flip_margin == 0.2
    assert s.rules == "default"
    assert s.db_url is None
    assert (s.workers, s.force) == (0, False)
    assert load_settings(None) == s


def test_model_path_defaults_to_the_shipped_model_unless_set():
    assert Settings().model_path == resource_path("models") / DEFAULT_MODEL_FILE
    custom = Settings().replace(emotions=dataclasses.replace(Settings().emotions,
                                                             model_path=Path("/m/x.onnx")))
    assert custom.model_path == Path("/m/x.onnx")


def test_settings_are_immutable_and_replace_returns_a_copy():
    s = Settings()
    changed = s.replace(workers=4)
    assert (s.workers, changed.workers) == (0, 4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.workers = 2  # type: ignore[misc]


def test_workers_0_means_one_per_core_this_process_may_use_and_gib_of_memory(monkeypatch):
    monkeypatch.setattr("screener.settings.os.sched_getaffinity", lambda pid: {0, 2, 5})
    memory = {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": 16 * 2**30 // 4096}
    monkeypatch.setattr("screener.settings.os.sysconf", lambda name: memory[name])
    assert Settings().worker_count == 3
    assert Settings(workers=1).worker_count == 1
    assert Settings(workers=4).worker_count == 4
    memory["SC_PHYS_PAGES"] = 2 * 2**30 // 4096  # 3 cores, 2 GiB
    assert Settings().worker_count == 2
    memory["SC_PHYS_PAGES"] = 2**29 // 4096  # half a GiB: still one
    assert Settings().worker_count == 1


def test_load_settings_reads_sections_and_top_level_keys(tmp_path):
    path = config(
        tmp_path,
        """
rules = "seed"
workers = 3
force = true
db_url = "sqlite:///elsewhere.db"

[keyframes]
every_s = 2.5
cut_threshold = 30

[faces]
detector = "haar"
detector_model = "models/faces.onnx"
crop_scale = 1.1
keep_all = true

[emotions]
model_path = "models/mine.onnx"
batch_size = 64
""",
    )
    s = load_settings(path)
    assert (s.rules, s.workers, s.force, s.db_url) == ("seed", 3, True, "sqlite:///elsewhere.db")
    assert s.keyframes.every_s == 2.5
    assert s.keyframes.cut_threshold == 30
    assert s.keyframes.min_scene_s == 0.5  # untouched keys keep their defaults
    assert (s.faces.detector, s.faces.crop_scale) == ("haar", 1.1)
    assert s.faces.detector_model == Path("models/faces.onnx")
    assert s.faces.keep_all is True
    assert s.faces.min_neighbors == 5
    assert s.emotions.model_path == Path("models/mine.onnx")
    assert s.emotions.batch_size == 64
    assert s.model_path == Path("models/mine.onnx")


def test_empty_file_gives_the_defaults(tmp_path):
    assert load_settings(config(tmp_path, "# nothing\n")) == Settings()


@pytest.mark.parametrize(
    ("text", "words"),
    [
        # unknown keys
        ("colour = 1\n", "colour"),
        ("[keyframes]\nevery = 2\n", "every"),
        ("[display]\nwidth = 3\n", "display"),
        # wrong types
        ('[keyframes]\nevery_s = "fast"\n', "every_s must be a number"),
        ("[faces]\nmin_neighbors = [5]\n", "min_neighbors must be a number"),
        ('[faces]\nkeep_all = "yes"\n', "keep_all must be true or false"),
        ("[faces]\nkeep_all = 1\n", "keep_all must be true or false"),
        ("keyframes = 3\n", "[keyframes] must be a table"),
    ],
)
def test_unknown_keys_and_wrong_types_are_errors_naming_the_file(tmp_path, text, words):
    message, path = settings_error(tmp_path, text)
    assert str(path) in message
    assert words in message


@pytest.mark.parametrize("text", ['workers = "two"\n', "workers = -1\n", "rules = 5\n",
                                  'force = "no"\n'])
def test_wrong_top_level_types_are_errors(tmp_path, text):
    settings_error(tmp_path, text)


@pytest.mark.parametrize("text", ["[faces]\ndetector_model = 20\n",
                                  "[emotions]\nmodel_path = 3\n"])
def test_wrong_types_of_tuple_and_path_keys_are_settings_errors(tmp_path, text):
    settings_error(tmp_path, text)


def test_flip_margin_is_read_and_must_be_between_zero_and_one(tmp_path):
    for value in (0, 0.35, 1):
        loaded = load_settings(config(tmp_path, f"[emotions]\nflip_margin = {value}\n"))
        assert loaded.emotions.flip_margin == value
    for bad in ("1.5", "-0.1"):
        with pytest.raises(SettingsError, match="flip_margin must be between 0 and 1"):
            load_settings(config(tmp_path, f"[emotions]\nflip_margin = {bad}\n"))


def test_emotion_batch_size_must_be_positive(tmp_path):
    message, _ = settings_error(tmp_path, "[emotions]\nbatch_size = 0\n")
    assert "batch_size must be positive" in message


def test_a_bool_for_a_number_is_an_error(tmp_path):
    settings_error(tmp_path, "[faces]\nmin_neighbors = true\n")


def test_invalid_toml_is_an_error_naming_the_file(tmp_path):
    message, path = settings_error(tmp_path, "[keyframes\nevery_s = 1\n")
    assert str(path) in message
    assert "invalid TOML" in message


def test_missing_file_is_an_error_naming_it(tmp_path):
    missing = tmp_path / "absent.toml"
    with pytest.raises(SettingsError) as info:
        load_settings(missing)
    assert str(missing) in str(info.value)



def test_database_url_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("SCREENER_DB", "sqlite:///from-env.db")
    assert Settings(db_url="postgresql://h/db").database_url == "postgresql://h/db"
    assert Settings().database_url == "sqlite:///from-env.db"
    monkeypatch.delenv("SCREENER_DB")
    assert Settings().database_url == default_database_url()
    monkeypatch.setenv("SCREENER_DB", "")  # an empty variable does not count
    assert Settings().database_url == default_database_url()


def test_default_database_is_a_sqlite_file_in_the_user_data_dir(tmp_path, monkeypatch):
    from platformdirs import user_data_path

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    url = default_database_url()
    assert url == f"sqlite:///{user_data_path('screener') / 'screener.db'}"
    if sys.platform.startswith("linux"):
        assert url == f"sqlite:///{tmp_path / 'data' / 'screener' / 'screener.db'}"


def test_a_bare_database_path_means_a_sqlite_file_and_urls_pass_unchanged(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Settings(db_url="reports/s.db").database_url == f"sqlite:///{tmp_path}/reports/s.db"
    monkeypatch.setenv("SCREENER_DB", "other.db")
    assert Settings().database_url == f"sqlite:///{tmp_path}/other.db"
    for url in ("sqlite:////srv/a.db", "postgresql://u@db/screener"):
        assert Settings(db_url=url).database_url == url


def test_the_documented_settings_example_loads_and_shows_the_defaults(tmp_path):
    doc = (Path(__file__).parents[1] / "docs" / "settings.md").read_text(encoding="utf-8")
    example = doc.split("## Settings file", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    assert load_settings(config(tmp_path, example)) == Settings()


@pytest.mark.parametrize(("text", "words"), [
    ('detector = "mtcnn"', 'faces.detector must be "yunet" or "haar"'),
    ("score_threshold = 1.5", "score_threshold must be between 0 and 1"),
    ("crop_scale = 0", "crop_scale must be between"),
    ("crop_scale = 9", "crop_scale must be between"),
    ("offsets = [20, 40]", "unknown setting 'offsets'"),  # pixel margins are gone
])
def test_bad_face_settings_are_errors(tmp_path, text, words):
    message, _ = settings_error(tmp_path, f"[faces]\n{text}\n")
    assert words in message and "\n" not in message
