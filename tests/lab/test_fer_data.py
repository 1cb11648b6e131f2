from pathlib import Path

import cv2
import numpy as np
import pytest

from screener.domain import EMOTIONS
from screener.lab.fer_data import DatasetError, load_split

HEADER = "emotion,pixels,Usage\n"


def image(path: Path, value: int, size: tuple[int, int] = (48, 48), colour: bool = False) -> Path:
    """A uniform grey (or grey-valued BGR) image of `size` (width, height)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size[1], size[0], 3) if colour else (size[1], size[0])
    assert cv2.imwrite(str(path), np.full(shape, value, np.uint8))
    return path


def csv_row(label, pixels, usage: str) -> str:
    return f"{label},{' '.join(str(p) for p in pixels)},{usage}\n"


def test_split_folders(tmp_path):
    image(tmp_path / "train" / "happy" / "a.png", 10)
    image(tmp_path / "train" / "sad" / "b.png", 20)
    image(tmp_path / "train" / "sad" / "c.png", 30)
    image(tmp_path / "val" / "angry" / "d.png", 40)
    train = load_split(tmp_path, "train")
    assert len(train) == 3
    assert train.images.shape == (3, 48, 48)
    assert train.images.dtype == np.uint8
    assert train.labels.tolist() == [EMOTIONS.index("happy"), EMOTIONS.index("sad"),
                                     EMOTIONS.index("sad")]
    assert [int(im[0, 0]) for im in train.images] == [10, 20, 30]
    assert all((im == im[0, 0]).all() for im in train.images)
    assert [Path(p).name for p in train.paths] == ["a.png", "b.png", "c.png"]
    assert train.counts() == {**dict.fromkeys(EMOTIONS, 0), "happy": 1, "sad": 2}
    val = load_split(tmp_path, "val")
    assert val.labels.tolist() == [EMOTIONS.index("angry")]
    assert int(val.images[0].mean()) == 40


def test_bare_emotion_folder_with_only_some_emotions(tmp_path):
    image(tmp_path / "fear" / "x.png", 50)
    image(tmp_path / "neutral" / "y.png", 60)
    (tmp_path / "fear" / "notes.txt").write_text("not an image")
    data = load_split(tmp_path, "val")
    assert data.labels.tolist() == [EMOTIONS.index("fear"), EMOTIONS.index("neutral")]
    assert data.counts()["fear"] == 1 and data.counts()["happy"] == 0
    assert sum(data.counts().values()) == 2


def test_other_sizes_and_colour_images_become_48x48_grey(tmp_path):
    image(tmp_path / "surprise" / "big.png", 100, size=(96, 64), colour=True)
    image(tmp_path / "surprise" / "small.jpg", 200, size=(20, 20))
    data = load_split(tmp_path, "test")
    assert data.images.shape == (2, 48, 48)
    big, small = data.images
    assert (big == 100).all()  # grey BGR (100, 100, 100) reads as grey 100
    assert abs(float(small.mean()) - 200) <= 2  # JPEG may shift a uniform image slightly


def test_unknown_folder_name_is_named_in_the_error(tmp_path):
    image(tmp_path / "happy" / "a.png", 10)
    image(tmp_path / "happyy" / "b.png", 10)
    with pytest.raises(DatasetError, match="happyy"):
        load_split(tmp_path, "train")


def test_unreadable_image_is_an_error_naming_it(tmp_path):
    image(tmp_path / "sad" / "fine.png", 10)
    (tmp_path / "sad" / "broken.jpg").write_text("this is text, not a JPEG")
    with pytest.raises(DatasetError, match="broken.jpg"):
        load_split(tmp_path, "train")


def test_folder_without_emotion_folders_is_an_error(tmp_path):
    image(tmp_path / "loose.png", 10)
    with pytest.raises(DatasetError, match="no emotion folders"):
        load_split(tmp_path, "train")


def test_cropper_output_is_used_and_none_skips_the_image(tmp_path):
    image(tmp_path / "happy" / "dark.png", 20, size=(80, 80))
    image(tmp_path / "happy" / "light.png", 220, size=(80, 80))
    image(tmp_path / "sad" / "dark2.png", 30, size=(80, 80))
    seen = []

    def cropper(grey):
        seen.append(grey.shape)
        return None if grey.mean() > 128 else np.full((48, 48), 7, np.uint8)

    data = load_split(tmp_path, "train", cropper)
    assert seen == [(80, 80)] * 3  # the cropper gets the full grey image
    assert [Path(p).name for p in data.paths] == ["dark.png", "dark2.png"]
    assert data.labels.tolist() == [EMOTIONS.index("happy"), EMOTIONS.index("sad")]
    assert (data.images == 7).all()


def test_cropper_finding_no_face_anywhere_is_an_error(tmp_path):
    image(tmp_path / "happy" / "a.png", 10)
    with pytest.raises(DatasetError, match="no usable images"):
        load_split(tmp_path, "train", lambda grey: None)


def test_csv_usage_maps_to_splits(tmp_path):
    gradient = [i % 256 for i in range(48 * 48)]
    path = tmp_path / "fer.csv"
    path.write_text(
        HEADER
        + csv_row(0, [1] * 2304, "Training")
        + csv_row(3, [2] * 2304, "PublicTest")
        + csv_row(6, gradient, "PrivateTest")
        + csv_row(4, [5] * 2304, "Training")
    )
    train = load_split(path, "train")
    assert train.labels.tolist() == [0, 4]
    assert [int(im.max()) for im in train.images] == [1, 5]
    assert train.paths == [f"{path}:2", f"{path}:5"]
    val = load_split(path, "val")
    assert val.labels.tolist() == [3]
    test = load_split(path, "test")
    assert test.labels.tolist() == [6]
    # Row-major: pixel (row 1, column 0) is the 49th value.
    assert int(test.images[0][1, 0]) == 48
    assert int(test.images[0][0, 47]) == 47
    assert test.images.shape == (1, 48, 48) and test.images.dtype == np.uint8


@pytest.mark.parametrize(
    "bad_row",
    [
        csv_row("x", [1] * 2304, "Training"),
        csv_row(3, [1] * 100, "Training"),
        csv_row(7, [1] * 2304, "Training"),
        csv_row(3, ["a"] * 2304, "Training"),
    ],
)
def test_bad_csv_row_names_its_row_number(tmp_path, bad_row):
    path = tmp_path / "fer.csv"
    path.write_text(HEADER + csv_row(0, [1] * 2304, "Training") + bad_row)
    with pytest.raises(DatasetError, match=r"fer\.csv:3:"):
        load_split(path, "train")


def test_out_of_range_pixel_is_a_dataset_error(tmp_path):
    path = tmp_path / "fer.csv"
    path.write_text(HEADER + csv_row(0, [1] * 2304, "Training") + csv_row(3, [300] * 2304,
                                                                          "Training"))
    with pytest.raises(DatasetError, match=r"fer\.csv:3:"):
        load_split(path, "train")


def test_truncated_csv_row_is_a_dataset_error(tmp_path):
    path = tmp_path / "fer.csv"
    path.write_text(HEADER + csv_row(0, [1] * 2304, "Training") + "3\n")
    with pytest.raises(DatasetError, match=r"fer\.csv:3:"):
        load_split(path, "train")


def test_csv_without_the_needed_columns_is_an_error(tmp_path):
    path = tmp_path / "fer.csv"
    path.write_text("emotion,Usage\n3,Training\n")
    with pytest.raises(DatasetError, match="pixels"):
        load_split(path, "train")


def test_csv_without_rows_for_the_split_is_an_error(tmp_path):
    path = tmp_path / "fer.csv"
    path.write_text(HEADER + csv_row(0, [1] * 2304, "Training"))
    with pytest.raises(DatasetError, match="PrivateTest"):
        load_split(path, "test")


def test_missing_source_or_a_non_csv_file_is_an_error(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        load_split(tmp_path / "absent", "train")
    other = tmp_path / "data.txt"
    other.write_text("hello")
    with pytest.raises(DatasetError, match="CSV"):
        load_split(other, "train")
