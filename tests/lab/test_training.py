"""A few real training steps on tiny generated data (the full FER2013 run is a benchmark)."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import import_or_missing

import_or_missing("tensorflow", "tensorflow")

from screener.domain import EMOTIONS  # noqa: E402
from screener.emotions.model import ModelError, OnnxEmotionModel  # noqa: E402
from screener.lab.augmentation import augment_batch, jitter_like_video, mixup  # noqa: E402
from screener.lab.fer_data import LabelledImages  # noqa: E402
from screener.lab.networks import build_mini_xception, build_model  # noqa: E402
from screener.lab.train_settings import TrainSettings  # noqa: E402
from screener.lab.training import (  # noqa: E402
    _batches_class,
    adjusted_crossentropy,
    class_weights,
    learning_rate,
    one_hot,
    prior_offsets,
    train,
    training_targets,
)
from screener.settings import EmotionSettings, SettingsError  # noqa: E402


def stripes(count: int, seed: int) -> LabelledImages:
    """Horizontal stripes are 'happy', vertical ones 'sad': learnable in a few steps."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for i in range(count):
        period = rng.integers(4, 9)
        wave = (np.sin(np.arange(48) * 2 * np.pi / period) > 0).astype(np.uint8) * 200 + 20
        image = np.tile(wave[:, None], (1, 48)) if i % 2 else np.tile(wave[None, :], (48, 1))
        images.append(np.clip(image + rng.integers(0, 30, (48, 48)), 0, 255).astype(np.uint8))
        labels.append(EMOTIONS.index("happy") if i % 2 else EMOTIONS.index("sad"))
    return LabelledImages(np.stack(images), np.array(labels), [str(i) for i in range(count)])


def test_mini_xception_has_the_papers_size():
    model = build_mini_xception(TrainSettings())
    assert model.output_shape == (None, len(EMOTIONS))
    assert 50_000 <= model.count_params() <= 70_000
    wider = build_mini_xception(TrainSettings(width=2))
    assert wider.count_params() > 2 * model.count_params()


def test_augmentation_keeps_shape_and_changes_pixels():
    data = stripes(8, 0).images
    out = augment_batch(data, np.random.default_rng(0))
    assert out.shape == data.shape and out.dtype == np.uint8
    assert not np.array_equal(out, data)
    assert np.array_equal(out, augment_batch(data, np.random.default_rng(0)))


def test_cutout_greys_a_square_in_the_chosen_share_and_keeps_the_rest_of_the_recipe():
    data = stripes(64, 0).images
    plain = augment_batch(data, np.random.default_rng(3))
    cut = augment_batch(data, np.random.default_rng(3), cutout=0.5)
    changed = [i for i in range(len(data)) if not np.array_equal(plain[i], cut[i])]
    assert 16 <= len(changed) <= 48
    for i in changed:
        grey = cut[i] != plain[i]
        ys, xs = np.nonzero(grey)
        assert np.all(cut[i][grey] == 128)
        assert ys.max() - ys.min() < 24 and xs.max() - xs.min() < 24
    with pytest.raises(SettingsError):
        TrainSettings(cutout=1.5).validate()


def test_crop_jitter_varies_framing_and_lighting_and_stays_reproducible():
    data = stripes(64, 0).images
    plain = augment_batch(data, np.random.default_rng(5))
    jittered = augment_batch(data, np.random.default_rng(5), crop_jitter=True)
    assert jittered.shape == data.shape and jittered.dtype == np.uint8
    assert not np.array_equal(jittered, plain)
    assert np.array_equal(jittered, augment_batch(data, np.random.default_rng(5), crop_jitter=True))
    # lighting and contrast change: the spread of mean brightness across faces grows
    assert jittered.mean(axis=(1, 2)).std() > plain.mean(axis=(1, 2)).std()


def test_video_jitter_blurs_or_relights_some_faces_and_leaves_others_alone():
    face = stripes(1, 0).images[0]
    rng = np.random.default_rng(0)
    outs = [jitter_like_video(face, rng) for _ in range(200)]
    unchanged = sum(np.array_equal(out, face) for out in outs)
    assert 0 < unchanged < 100  # lighting alone touches 80% of faces
    # blur or low resolution smooths the stripes' edges in some of them
    edges = [np.abs(np.diff(out.astype(int), axis=1)).mean() for out in outs]
    assert min(edges) < 0.6 * np.abs(np.diff(face.astype(int), axis=1)).mean()


def test_vgg_is_larger_and_outputs_the_seven_emotions():
    small = build_model(TrainSettings())
    vgg = build_model(TrainSettings(arch="vgg", blocks=(8, 16, 32, 64), dense=32, l2=0.0))
    assert vgg.name == "vgg" and vgg.output_shape == (None, len(EMOTIONS))
    assert vgg.count_params() > small.count_params()
    out = vgg.predict(np.zeros((4, 48, 48, 1), np.float32), verbose=0)
    assert np.allclose(out.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_vgg_trains_with_crop_jitter_and_exports(tmp_path: Path):
    settings = TrainSettings(arch="vgg", blocks=(8, 16), dense=16, epochs=3, batch_size=16,
                             learning_rate=3e-3, l2=0.0, dropout=0.1, crop_jitter=True,
                             equalise=True)
    out = tmp_path / "vgg.keras"
    result = train(stripes(100, 1), stripes(40, 2), out, settings, tmp_path / "ckpt",
                   log=lambda _: None)
    assert result.epochs_run == 3
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["architecture"].startswith("VGG") and meta["settings"]["crop_jitter"] is True
    # Trained on equalised faces, so scans equalise the faces they give it.
    assert meta["equalise"] is True
    model = OnnxEmotionModel(out.with_suffix(".onnx"))
    assert model.card.equalise
    assert model.predict(stripes(4, 3).images).shape == (4, len(EMOTIONS))


def test_equalised_training_batches_are_equalised_after_augmentation():
    import cv2
    import keras

    data = stripes(32, 1)

    def first_batch(equalise: bool) -> np.ndarray:
        settings = TrainSettings(batch_size=16, crop_jitter=True, equalise=equalise)
        batches = _batches_class(keras)(data, settings, np.ones(len(EMOTIONS)),
                                        one_hot(data.labels))
        return np.round((batches[0][0][..., 0] + 1.0) * 127.5).astype(np.uint8)

    augmented = first_batch(equalise=False)
    expected = np.stack([cv2.equalizeHist(face) for face in augmented])
    assert np.array_equal(first_batch(equalise=True), expected)
    assert not np.array_equal(expected, augmented)


@pytest.mark.slow
def test_bfloat16_training_computes_in_bfloat16_and_ships_a_float32_model(tmp_path: Path):
    import keras
    import onnx

    settings = TrainSettings(arch="vgg", blocks=(8, 16), dense=16, epochs=2, batch_size=16,
                             learning_rate=3e-3, l2=0.0, dropout=0.1, precision="bfloat16")
    out = tmp_path / "vgg.keras"
    train(stripes(96, 1), stripes(32, 2), out, settings, tmp_path / "ckpt", log=lambda _: None)
    assert keras.mixed_precision.global_policy().name == "float32"
    trained = keras.models.load_model(out)
    assert {layer.dtype_policy.compute_dtype for layer in trained.layers} >= {"bfloat16"}
    assert trained.get_layer("probabilities").dtype_policy.compute_dtype == "float32"
    graph = onnx.load(str(out.with_suffix(".onnx"))).graph
    bfloat16 = onnx.TensorProto.BFLOAT16
    assert all(tensor.data_type != bfloat16 for tensor in graph.initializer)
    assert not [node for node in graph.node if node.op_type == "Cast"
                and any(a.name == "to" and a.i == bfloat16 for a in node.attribute)]
    faces = stripes(8, 3).images
    from screener.emotions.model import preprocess

    exported = OnnxEmotionModel(out.with_suffix(".onnx"), temperature=1.0).predict(faces)
    assert np.abs(exported - trained.predict(preprocess(faces), verbose=0)).max() < 0.02
    assert json.loads(out.with_suffix(".json").read_text())["settings"]["precision"] == "bfloat16"


def test_batch_sizes_must_be_multiples_of_four():
    with pytest.raises(SettingsError):
        TrainSettings(batch_size=30).validate()


def test_wider_late_blocks_change_only_the_low_resolution_layers():
    base = build_mini_xception(TrainSettings())
    wide = build_mini_xception(TrainSettings(blocks=(16, 48, 128, 256)))
    assert wide.count_params() > 3 * base.count_params()
    def first_block(model):
        return next(layer for layer in model.layers if "separable" in layer.name)

    assert first_block(base).output.shape == first_block(wide).output.shape
    assert wide.output_shape == (None, len(EMOTIONS))


@pytest.mark.parametrize(
    "bad",
    [
        {"blocks": ()}, {"blocks": (16, 0)}, {"schedule": "linear"}, {"distill": -0.1},
        {"consistent": True}, {"mixup": -0.2}, {"arch": "resnet"}, {"dropout": 1.0},
        {"dense": 0}, {"arch": "vgg", "blocks": (8, 8, 8, 8, 8, 8)}, {"precision": "float16"},
    ],
)
def test_bad_architecture_or_schedule_is_refused(bad):
    with pytest.raises(SettingsError):
        TrainSettings(**bad).validate()


def test_cosine_schedule_decays_to_zero_over_the_run_and_plateau_is_a_constant():
    cosine = learning_rate(TrainSettings(schedule="cosine", epochs=10, learning_rate=1e-3), 50)
    assert float(cosine(0)) == pytest.approx(1e-3)
    assert float(cosine(250)) == pytest.approx(5e-4, rel=1e-3)
    assert float(cosine(500)) == pytest.approx(0.0, abs=1e-9)
    assert learning_rate(TrainSettings(learning_rate=2e-3), 50) == 2e-3


@pytest.mark.slow
def test_training_learns_writes_checkpoints_exports_and_resumes(tmp_path: Path):
    settings = TrainSettings(epochs=4, batch_size=16, learning_rate=3e-3, augment=False,
                             patience=10, l2=0.0)
    out = tmp_path / "model.keras"
    checkpoints = tmp_path / "ckpt"
    result = train(stripes(160, 1), stripes(40, 2), out, settings, checkpoints, log=lambda _: None)
    for path in (out, out.with_suffix(".onnx"), out.with_suffix(".json"),
                 tmp_path / "model_confusion.png", checkpoints / "best.keras"):
        assert path.is_file(), path
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["val_accuracy"] == pytest.approx(result.evaluation.accuracy, abs=1e-4)
    assert meta["epochs_run"] == 4
    assert meta["trained_on"].startswith("Keras on tensorflow, ")  # where it ran, for the card
    val = stripes(40, 2)
    default_margin = EmotionSettings().flip_margin
    assert meta["flip_margin"] == default_margin
    assert set(result.accuracy_by_flip_margin) == {0.0, default_margin, 1.0}
    for margin, accuracy in result.accuracy_by_flip_margin.items():
        model = OnnxEmotionModel(out.with_suffix(".onnx"), flip_margin=margin)
        predicted = model.predict(val.images).argmax(axis=1)
        assert accuracy == pytest.approx(float((predicted == val.labels).mean()))
        assert meta["val_accuracy_by_flip_margin"][f"{margin:g}"] == pytest.approx(accuracy,
                                                                                   abs=1e-4)
        assert model.card.val_accuracy == pytest.approx(accuracy, abs=1e-4)
    assert result.evaluation.accuracy == result.accuracy_by_flip_margin[default_margin]

    import keras

    keras_model = keras.models.load_model(out)
    calibration = meta["calibration"]
    assert calibration["method"] == "temperature" and calibration["temperature"] > 0
    assert calibration["images"] == 40 and calibration["flip_margin"] == default_margin
    assert (tmp_path / "model_reliability.png").is_file()
    raw = OnnxEmotionModel(out.with_suffix(".onnx"), temperature=1.0)
    probabilities = raw.predict(stripes(8, 3).images)
    keras_probabilities = keras_model.predict(
        stripes(8, 3).images[..., None] / 127.5 - 1.0, verbose=0
    )
    assert np.allclose(probabilities, keras_probabilities, atol=1e-4)

    messages: list[str] = []
    resumed = train(stripes(160, 1), stripes(40, 2), out,
                    TrainSettings(**{**vars(settings), "epochs": 5}), checkpoints,
                    log=messages.append)
    assert any("resuming" in m for m in messages)
    assert resumed.epochs_run == 5
    # the resumed run reports the time of all 5 epochs, not only of the one it ran
    assert resumed.wall_s > result.wall_s > 0
    assert json.loads(out.with_suffix(".json").read_text())["train_wall_s"] == pytest.approx(
        resumed.wall_s, abs=0.1)

    # Keras deleted its backup when the run ended: the same command again ships, not retrains.
    messages.clear()
    again = train(stripes(160, 1), stripes(40, 2), out,
                  TrainSettings(**{**vars(settings), "epochs": 5}), checkpoints,
                  log=messages.append)
    assert any("has finished (5 epochs)" in m for m in messages)
    assert (again.epochs_run, again.wall_s) == (5, resumed.wall_s)
    assert again.evaluation.accuracy == resumed.evaluation.accuracy


class RunStopped(Exception):
    pass


@pytest.mark.slow
def test_an_interrupted_run_resumes_with_the_batches_of_the_epoch_it_resumes_at(
    tmp_path: Path, monkeypatch
):
    import screener.lab.training as training

    draws: list[tuple[int, ...]] = []
    stop_after: list[int] = []

    def recording_augment(images, rng, *args):
        done = tmp_path / "interrupted" / "state.json"
        if stop_after and done.is_file() and json.loads(done.read_text())["epochs_run"] >= 2:
            raise RunStopped("as a stopped session ends a run, between epochs")
        draws.append(tuple(rng.bit_generator.seed_seq.entropy))
        return augment_batch(images, rng, *args)

    monkeypatch.setattr(training, "augment_batch", recording_augment)
    settings = TrainSettings(epochs=3, batch_size=16, patience=10)

    def epoch_draws(epoch: int) -> set[tuple[int, ...]]:
        return {d for d in draws if d[1] == epoch + 1}

    train(stripes(64, 1), stripes(16, 2), tmp_path / "whole.keras", settings,
          tmp_path / "whole", log=lambda _: None)
    whole = {epoch: epoch_draws(epoch) for epoch in range(3)}
    assert all(len(whole[epoch]) == 4 for epoch in range(3))  # four batches an epoch

    draws.clear()
    stop_after.append(2)
    with pytest.raises(Exception, match="RunStopped"):  # TensorFlow wraps it in its own
        train(stripes(64, 1), stripes(16, 2), tmp_path / "run.keras", settings,
              tmp_path / "interrupted", log=lambda _: None)
    stop_after.clear()
    draws.clear()
    messages: list[str] = []
    train(stripes(64, 1), stripes(16, 2), tmp_path / "run.keras", settings,
          tmp_path / "interrupted", log=messages.append)
    assert any("resuming" in m for m in messages)
    assert epoch_draws(2) == whole[2]
    assert not epoch_draws(1)  # the finished epochs are not drawn again


class BrightnessTeacher:
    """Says 'happy' in proportion to an image's brightness, the rest 'neutral'. With
    `left_half`, only the left half counts, so a mirror image gets another answer."""

    def __init__(self, gain: float, left_half: bool = False) -> None:
        self.gain, self.columns = gain, 24 if left_half else 48

    def predict(self, crops: np.ndarray) -> np.ndarray:
        brightness = crops[:, :, : self.columns].mean(axis=(1, 2)) / 255.0
        happy = np.clip(brightness * self.gain, 0.0, 1.0)
        out = np.zeros((len(crops), len(EMOTIONS)), dtype=np.float32)
        out[:, EMOTIONS.index("happy")] = happy
        out[:, EMOTIONS.index("neutral")] = 1.0 - happy
        return out


def test_distillation_targets_mix_the_label_with_the_teachers_mean():
    data = stripes(12, 5)
    onehot = np.eye(len(EMOTIONS))[data.labels]
    assert np.array_equal(training_targets(data, 0.5), onehot)
    teachers = [BrightnessTeacher(1.0), BrightnessTeacher(0.5)]
    targets = training_targets(data, 0.25, teachers)
    brightness = data.images.mean(axis=(1, 2)) / 255.0
    happy_mean = (brightness + brightness * 0.5) / 2
    happy, neutral = EMOTIONS.index("happy"), EMOTIONS.index("neutral")
    assert np.allclose(targets[:, happy], 0.75 * onehot[:, happy] + 0.25 * happy_mean, atol=1e-6)
    assert np.allclose(targets[:, neutral], 0.25 * (1 - happy_mean), atol=1e-6)
    assert np.allclose(targets.sum(axis=1), 1.0, atol=1e-6)
    assert np.array_equal(training_targets(data, 0.0, teachers), onehot)


def test_training_batches_carry_each_images_own_target():
    import keras

    data = stripes(40, 6)
    settings = TrainSettings(batch_size=8, augment=False)
    targets = training_targets(data, 0.5, [BrightnessTeacher(1.0)])
    batches = _batches_class(keras)(data, settings, class_weights(data.labels, False), targets)
    for index in range(len(batches)):
        images, batch_targets, _ = batches[index]
        rows = batches._order[index * 8 : (index + 1) * 8]
        assert np.array_equal(batch_targets, targets[rows])
        assert np.allclose(images[..., 0], data.images[rows] / 127.5 - 1.0, atol=1e-6)


def test_consistent_batches_take_the_teachers_view_of_the_augmented_images():
    import keras

    data = stripes(40, 7)
    settings = TrainSettings(batch_size=8, distill=0.4, teachers=("t.onnx",), consistent=True)
    teacher = BrightnessTeacher(1.0, left_half=True)
    clean = training_targets(data, 0.4, [teacher])
    batches = _batches_class(keras)(
        data, settings, class_weights(data.labels, False), one_hot(data.labels),
        [teacher],
    )
    differs = 0
    for index in range(len(batches)):
        images, batch_targets, _ = batches[index]
        rows = batches._order[index * 8 : (index + 1) * 8]
        seen = np.round((images[..., 0] + 1.0) * 127.5).astype(np.uint8)
        expected = 0.6 * np.eye(len(EMOTIONS))[data.labels[rows]] + 0.4 * teacher.predict(seen)
        assert np.allclose(batch_targets, expected, atol=2e-3)
        differs += int((np.abs(batch_targets - clean[rows]).max(axis=1) > 0.01).sum())
    assert differs > 0, "augmented images should get other targets than their clean originals"


def blend_of_two(row: np.ndarray) -> tuple[float, int, int]:
    """(share, i, j) of a target row that is share * one-hot(i) + (1 - share) * one-hot(j)."""
    nonzero = np.flatnonzero(row > 1e-6)
    assert 1 <= len(nonzero) <= 2 and row.sum() == pytest.approx(1.0, abs=1e-5)
    first, second = nonzero[0], nonzero[-1]
    return float(row[first]), int(first), int(second)


def test_mixup_blends_each_image_its_target_and_weight_by_the_same_share():
    images = stripes(16, 8).images
    targets = np.eye(16, dtype=np.float32)
    weights = np.arange(1, 17, dtype=np.float32)
    mixed, mixed_targets, mixed_weights = mixup(
        images, targets, weights, 0.4, np.random.default_rng(0)
    )
    assert mixed.shape == images.shape and mixed_targets.shape == targets.shape
    shares = []
    for row in range(16):
        share, i, j = blend_of_two(mixed_targets[row])
        assert row in (i, j)
        blend = share * images[i].astype(np.float32) + (1 - share) * images[j]
        assert np.allclose(mixed[row], blend, atol=1e-3)
        assert mixed_weights[row] == pytest.approx(
            share * weights[i] + (1 - share) * weights[j], rel=1e-5
        )
        shares.append(min(share, 1 - share) if i != j else 0.0)
    assert max(shares) > 0.05, "some pairs should be visibly blended"
    again = mixup(images, targets, weights, 0.4, np.random.default_rng(0))
    assert np.array_equal(again[0], mixed)


def test_mixup_alpha_sets_how_far_blends_go_from_the_originals():
    images, targets = stripes(256, 9).images, np.eye(256, dtype=np.float32)
    weights = np.ones(256, dtype=np.float32)

    def mean_minor_share(alpha: float) -> float:
        _, mixed, _ = mixup(images, targets, weights, alpha, np.random.default_rng(1))
        return float(np.mean(1.0 - mixed.max(axis=1)))

    assert mean_minor_share(0.1) < 0.1 < 0.3 < mean_minor_share(8.0)


def test_function_matching_batches_blend_labels_and_ask_the_teachers_about_the_blend():
    import keras

    data = stripes(40, 7)
    settings = TrainSettings(
        batch_size=8, distill=0.4, teachers=("t.onnx",), consistent=True, mixup=1.0
    )
    teacher = BrightnessTeacher(1.0, left_half=True)
    batches = _batches_class(keras)(
        data, settings, class_weights(data.labels, False), one_hot(data.labels), [teacher]
    )
    blended = 0
    for index in range(len(batches)):
        images, batch_targets, _ = batches[index]
        rows = batches._order[index * 8 : (index + 1) * 8]
        soft = teacher.predict((images[..., 0] + 1.0) * 127.5)
        hard = (batch_targets - 0.4 * soft) / 0.6
        for row in hard:
            share, i, j = blend_of_two(row)
            assert {i, j} <= set(data.labels[rows].tolist())
            blended += int(i != j and 0.05 < share < 0.95)
    assert blended > 0, "pairs of different emotions should be blended"


@pytest.mark.slow
def test_a_student_trains_from_an_onnx_teacher_and_records_it(tmp_path: Path):
    settings = TrainSettings(epochs=2, batch_size=16, learning_rate=3e-3, augment=False, l2=0.0)
    teacher = train(stripes(96, 1), stripes(32, 2), tmp_path / "teacher.keras", settings,
                    log=lambda _: None)
    for consistent in (False, True):
        messages: list[str] = []
        student = TrainSettings(**{**vars(settings), "teachers": (str(teacher.onnx_path),),
                                   "distill": 0.7, "consistent": consistent,
                                   "mixup": 0.2 if consistent else 0.0})
        out = tmp_path / f"student_{consistent}.keras"
        result = train(stripes(96, 1), stripes(32, 2), out, student, log=messages.append)
        assert any("distilling from 1 teacher" in m for m in messages)
        assert any("consistent distillation" in m for m in messages) == consistent
        recorded = json.loads(out.with_suffix(".json").read_text())["settings"]
        assert recorded["teachers"] == [str(teacher.onnx_path)] and recorded["distill"] == 0.7
        assert recorded["consistent"] == consistent
        assert any("mixup" in m for m in messages) == consistent
        assert recorded["mixup"] == (0.2 if consistent else 0.0)
        assert result.evaluation.count == 32


@pytest.mark.slow
def test_a_run_can_start_from_a_trained_model_and_refuses_one_that_does_not_fit(tmp_path: Path):
    import keras

    settings = TrainSettings(epochs=2, batch_size=16, learning_rate=3e-3, augment=False, l2=0.0)
    train(stripes(96, 1), stripes(32, 2), tmp_path / "first.keras", settings, log=lambda _: None)
    # At a vanishing learning rate a run keeps the weights it starts from: the trained ones, or
    # random ones.
    still = {**vars(settings), "epochs": 1, "learning_rate": 1e-9}
    messages: list[str] = []
    train(stripes(96, 1), stripes(32, 2), tmp_path / "restart.keras",
          TrainSettings(**{**still, "init_from": str(tmp_path / "first.keras")}),
          log=messages.append)
    train(stripes(96, 1), stripes(32, 2), tmp_path / "fresh.keras", TrainSettings(**still),
          log=lambda _: None)
    assert any("starting from the weights of" in m for m in messages)

    def kernels(name: str) -> np.ndarray:
        model = keras.models.load_model(tmp_path / f"{name}.keras")
        return np.concatenate([w.numpy().ravel() for w in model.trainable_weights])

    first = kernels("first")
    assert np.allclose(kernels("restart"), first, atol=1e-5)
    assert not np.allclose(kernels("fresh"), first, atol=1e-2)
    recorded = json.loads((tmp_path / "restart.json").read_text())["settings"]
    assert recorded["init_from"] == str(tmp_path / "first.keras")
    vgg = TrainSettings(**{**still, "arch": "vgg", "blocks": (8, 16), "dense": 16,
                           "init_from": str(tmp_path / "first.keras")})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ModelError, match="do not fit this architecture"):
            train(stripes(96, 1), stripes(32, 2), tmp_path / "vgg.keras", vgg,
                  log=lambda _: None)
    # Keras's "layers will retain their freshly-initialized weights" becomes the refusal.
    assert not [w for w in caught if "nested container" in str(w.message)]


def test_loss_with_logit_offsets_falls_over_a_few_steps():
    import keras

    from screener.emotions.model import preprocess

    model = build_model(TrainSettings(l2=0.0))
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=adjusted_crossentropy())
    data = stripes(64, 4)
    offsets = np.tile(prior_offsets(data.labels[:8], np.arange(70) % 7), (64, 1))
    y = np.concatenate([one_hot(data.labels), offsets], axis=1)
    history = model.fit(preprocess(data.images), y, batch_size=16, epochs=3, verbose=0,
                        shuffle=False)
    assert history.history["loss"][-1] < history.history["loss"][0]


@pytest.mark.slow
@pytest.mark.parametrize("arch", [
    TrainSettings(l2=0.0),
    TrainSettings(arch="vgg", blocks=(8, 16, 32), dense=32, l2=0.0, dropout=0.1),
])
def test_loss_falls_over_a_few_steps(arch):
    import keras

    from screener.emotions.model import preprocess

    model = build_model(arch)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="categorical_crossentropy")
    data = stripes(64, 4)
    x, y = preprocess(data.images), np.eye(len(EMOTIONS))[data.labels]
    history = model.fit(x, y, batch_size=16, epochs=3, verbose=0, shuffle=False)
    losses = history.history["loss"]
    assert losses[-1] < losses[0]


def test_other_keras_backends_need_only_keras_and_the_backend_to_train(monkeypatch):
    import screener.lab.shipping as shipping
    import screener.lab.training as training

    monkeypatch.setattr(shipping, "missing_packages", lambda names: list(names))
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert training.missing_training_packages() == ["keras", "jax"]
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    assert training.missing_training_packages() == ["tensorflow", "keras", "tf2onnx", "onnx"]


def test_prior_offsets_raise_what_a_source_labels_often_and_lower_what_it_labels_rarely():
    neutral, angry, fear = (EMOTIONS.index(e) for e in ("neutral", "angry", "fear"))
    web = np.array([neutral] * 80 + [angry] * 5)
    fer = np.arange(70) % len(EMOTIONS)
    offsets = prior_offsets(web, fer)
    assert offsets[neutral] > 1.0 and offsets[angry] < 0 and offsets[fear] < offsets[angry]
    assert np.isfinite(offsets).all()  # no fear at all in the source
    assert np.allclose(prior_offsets(fer, fer), 0.0, atol=1e-6)


def test_adjusted_crossentropy_without_offsets_is_crossentropy_and_offsets_forgive_the_prior():
    import keras

    neutral, angry = EMOTIONS.index("neutral"), EMOTIONS.index("angry")
    unsure = np.full((2, 7), 1 / 7, np.float32)
    labels = one_hot(np.array([neutral, angry]))
    loss = adjusted_crossentropy()
    plain = keras.losses.CategoricalCrossentropy(reduction=None)(labels, unsure)
    zero = loss(np.concatenate([labels, np.zeros_like(labels)], axis=1), unsure)
    assert np.allclose(np.asarray(zero), np.asarray(plain), atol=1e-5)
    offsets = np.zeros_like(labels)
    offsets[:, neutral], offsets[:, angry] = 1.5, -1.5  # a source that mostly says neutral
    adjusted = np.asarray(loss(np.concatenate([labels, offsets], axis=1), unsure))
    # Its neutral labels teach less, its rare angry ones more, than they would unadjusted.
    assert adjusted[0] < float(plain[0]) and adjusted[1] > float(plain[1])


def test_training_with_logit_offsets_learns_keeps_its_best_epoch_and_exports(tmp_path: Path):
    data = stripes(160, 1)
    offsets = np.zeros((len(data), len(EMOTIONS)), np.float32)
    offsets[::4] = prior_offsets(data.labels[::4], np.arange(70) % len(EMOTIONS))
    settings = TrainSettings(epochs=3, batch_size=16, learning_rate=3e-3, augment=False,
                             patience=10, l2=0.0)
    out = tmp_path / "model.keras"
    result = train(data, stripes(40, 2), out, settings, tmp_path / "ckpt", log=lambda _: None,
                   targets=one_hot(data.labels), offsets=offsets)
    state = json.loads((tmp_path / "ckpt" / "state.json").read_text())
    assert state["epochs_run"] == 3 and 1 <= state["best_epoch"] <= 3  # val accuracy was read
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["val_accuracy"] == pytest.approx(result.evaluation.accuracy, abs=1e-4)
    with pytest.raises(ValueError, match="offsets"):
        train(data, stripes(40, 2), tmp_path / "other.keras",
              TrainSettings(epochs=1, batch_size=16, consistent=True, teachers=("t.onnx",),
                            distill=0.5), log=lambda _: None, offsets=offsets)
