"""The pixels task: the IDX reader on files written here (plain and gzipped) and malformed ones,
the pixel orders and padding against the images themselves, batches drawn from the key, the
documented eval examples, the label-entropy baseline, the packaged digits, the data passed to
the compiled functions as an argument, and the real CLI (runs, plots, one-line errors)."""

import gzip
import hashlib
import json
import math
import struct
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from lstm_vg import config, datasets
from lstm_vg.analysis.plots.connectivity import marked_steps
from lstm_vg.core import batched, model, tasks, train, zoo
from lstm_vg.errors import UserError
from lstm_vg.results import read

from helpers import invoke

ROWS, COLUMNS = 3, 4  # the fixture's images: P = 12 pixels
P = ROWS * COLUMNS


def idx_bytes(array: np.ndarray, type_byte: int = 0x08) -> bytes:
    """An IDX file as LeCun et al. define it: 0, 0, type, n, n big-endian uint32 sizes, values."""
    header = bytes([0, 0, type_byte, array.ndim]) + b"".join(struct.pack(">I", n) for n in array.shape)
    return header + np.ascontiguousarray(array, np.uint8).tobytes()


def fixture_images(train=40, test=13, seed=0):
    """Distinct random images (so a sequence tells which image it is) and unbalanced labels."""
    rng = np.random.default_rng(seed)
    images = rng.permutation(256 ** 2)[: train + test]  # distinct first two pixels
    pixels = rng.integers(0, 256, (train + test, ROWS, COLUMNS), dtype=np.uint8)
    pixels[:, 0, 0], pixels[:, 0, 1] = images // 256, images % 256
    labels = np.concatenate([rng.integers(0, 10, train - 10), np.full(10, 3)]).astype(np.uint8)
    test_labels = rng.integers(0, 10, test).astype(np.uint8)
    return pixels[:train], labels, pixels[train:], test_labels


def write_folder(folder, arrays=None, gz=("train-images-idx3-ubyte",)):
    """The four IDX files of `arrays` (default: `fixture_images()`) in `folder`, those in `gz` gzipped."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = fixture_images() if arrays is None else arrays
    for name, array in zip(datasets.IDX_FILES.values(), arrays, strict=True):
        data = idx_bytes(array)
        if name in gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return folder


def task_of(folder, order="sequential", pad=0, threshold=None):
    section = config.TaskConfig(name="pixels", order=order, pad=pad, data=str(folder), threshold=threshold)
    return config.make_task(section, "test.yaml")


def test_the_idx_reader_reads_back_what_was_written_plain_and_gzipped(tmp_path):
    train_images, train_labels, test_images, test_labels = fixture_images()
    plain = write_folder(tmp_path / "plain", gz=())
    zipped = write_folder(tmp_path / "gz", gz=tuple(datasets.IDX_FILES.values()))
    np.testing.assert_array_equal(datasets.read_idx(plain / "train-images-idx3-ubyte", 3), train_images)
    np.testing.assert_array_equal(datasets.read_idx(zipped / "t10k-labels-idx1-ubyte.gz", 1), test_labels)
    for folder in (plain, zipped, write_folder(tmp_path / "mixed")):
        images = datasets.load(str(folder), ".", "x.yaml")
        np.testing.assert_array_equal(images.train_images, train_images.reshape(-1, P))
        np.testing.assert_array_equal(images.test_images, test_images.reshape(-1, P))
        np.testing.assert_array_equal(images.train_labels, train_labels)
        assert images.train_images.dtype == np.uint8 and images.scale == 255
    assert task_of(plain) == task_of(zipped) and hash(task_of(plain)) == hash(task_of(zipped))


BAD_FILES = {
    "bad magic": ("train-images-idx3-ubyte", lambda a: idx_bytes(a, 0x09),
                  "magic number 0x00000903; expected an IDX file of unsigned bytes with 3 dimensions"),
    "wrong dimensions": ("train-labels-idx1-ubyte", lambda a: idx_bytes(a.reshape(-1, 2)),
                         "magic number 0x00000802; expected an IDX file of unsigned bytes with 1 dimension"),
    "truncated": ("t10k-images-idx3-ubyte", lambda a: idx_bytes(a)[:-5],
                  "truncated: 151 bytes of values; its header's sizes 13 × 3 × 4 need exactly 156"),
    "too long": ("t10k-images-idx3-ubyte", lambda a: idx_bytes(a) + b"\0", "too long: 157 bytes"),
    "cut header": ("train-labels-idx1-ubyte", lambda a: idx_bytes(a)[:6], "the header is cut off"),
    "label count": ("t10k-labels-idx1-ubyte", lambda a: idx_bytes(a[:-1]),
                    "12 labels for the 13 images of t10k-images-idx3-ubyte; expected one label per image"),
    "label range": ("train-labels-idx1-ubyte", lambda a: idx_bytes(np.where(np.arange(a.size) == 7, 12, a)),
                    "label 12 at index 7; expected classes 0–9"),
    "not gzip": ("train-images-idx3-ubyte.gz", lambda a: b"not gzip at all",
                 "not a readable gzip file (BadGzipFile)"),
}


@pytest.mark.parametrize("case", BAD_FILES, ids=list(BAD_FILES))
def test_a_malformed_idx_file_is_a_one_line_error_naming_the_file(tmp_path, case):
    name, corrupt, expected = BAD_FILES[case]
    folder = write_folder(tmp_path / "idx")
    arrays = dict(zip(datasets.IDX_FILES.values(), fixture_images(), strict=True))
    path = folder / name
    path.write_bytes(corrupt(arrays[name.removesuffix(".gz")]))
    with pytest.raises(UserError) as error:
        task_of(folder)
    message = str(error.value)
    assert message.startswith(f"test.yaml: task.data: {path}: ") and "\n" not in message
    assert expected in message, message


def test_sequential_order_is_each_images_row_major_pixels_then_pad_zeros(tmp_path):
    train_images, train_labels, _, _ = fixture_images()
    task = task_of(write_folder(tmp_path / "idx"), pad=5)
    assert (task.pixels, task.length, task.sequence_length, task.input_size) == (P, P + 5, P + 5, 1)
    xs, targets = task.sample(jax.random.key(0), 64)
    xs, targets = np.asarray(xs, np.float64), np.asarray(targets)
    assert xs.shape == (P + 5, 64, 1) and targets.shape == (64,)
    flat = train_images.reshape(-1, P).astype(np.float64) / 255
    for b in range(64):
        [which] = np.flatnonzero(np.all(np.abs(flat - xs[:P, b, 0]) < 1e-6, axis=1))  # one image
        assert targets[b] == train_labels[which]
        assert np.all(xs[P:, b] == 0)
    drawn = {int(np.flatnonzero(np.all(np.abs(flat - xs[:P, b, 0]) < 1e-6, axis=1))[0]) for b in range(64)}
    assert len(drawn) > 20  # draws spread over the 40 training images


def test_permuted_order_is_one_fixed_true_permutation_for_every_example_and_run(tmp_path):
    folder = write_folder(tmp_path / "idx")
    task = task_of(folder, order="permuted", pad=2)
    _, _, test_images, _ = fixture_images()
    order = np.random.RandomState(0).permutation(P)  # the documented rule: seed 0, legacy stream
    assert sorted(order) == list(range(P)) and not np.array_equal(order, np.arange(P))
    for again in (task, task_of(folder, order="permuted", pad=2)):  # another task, another "run"
        xs, _ = again.sample_eval(jax.random.key(1), 100)
        expected = test_images.reshape(-1, P)[:, order].T / 255
        np.testing.assert_allclose(np.asarray(xs)[:P, :, 0], expected, rtol=1e-6)
        assert np.all(np.asarray(xs)[P:] == 0)
    # psMNIST's order, pinned (computed once with NumPy 2): a change would change every permuted result
    mnist_order = tasks.pixels.permutation(784)
    assert mnist_order[:8].tolist() == [693, 85, 647, 392, 765, 14, 299, 711]
    assert hashlib.sha256(mnist_order.astype("<i8").tobytes()).hexdigest() == \
        "fe62e3fef305ce16e55f08cd0056a8b237e12af6c9523ff3fb35395f6ec55222"


def test_batches_come_from_the_key_alone(tmp_path):
    sequential = task_of(write_folder(tmp_path / "a"))
    same_data = task_of(write_folder(tmp_path / "b", gz=tuple(datasets.IDX_FILES.values())))
    first = sequential.sample(jax.random.key(3), 16)
    for a, b in zip(first, same_data.sample(jax.random.key(3), 16), strict=True):
        np.testing.assert_array_equal(a, b)
    other = sequential.sample(jax.random.key(4), 16)
    assert not np.array_equal(first[0], other[0])
    # training batch k of a run is the task's sample at fold_in(fold_in(key, DATA), k)
    trainer = train.Trainer(zoo.get("rnn"), sequential, hidden=4, batch=16, chunk_steps=1, eval_batch=8,
                            probe_batch=4, optimizer="sgd", clip=0.0, momentum=0.0)
    state = trainer.init_state(5, 0.1)._replace(step=jnp.asarray(7, jnp.int32))
    xs, targets = sequential.sample(jax.random.fold_in(jax.random.fold_in(state.key, train.DATA), 7), 16)
    expected = jax.jit(trainer.mean_loss)(state.params, xs, targets)
    _, metrics = jax.jit(trainer.step)(state)
    assert float(metrics["loss"]) == pytest.approx(float(expected), rel=1e-6)


@pytest.mark.parametrize("batch, expected", [(5, [0, 2, 5, 7, 10]), (13, list(range(13))),
                                             (1024, list(range(13)))])
def test_eval_reads_the_documented_test_examples(tmp_path, batch, expected):
    """n = min(log.eval_batch, test size) examples, ⌊i·13/n⌋; through the Trainer's evaluate."""
    _, _, test_images, test_labels = fixture_images()
    task = task_of(write_folder(tmp_path / "idx"))
    assert tasks.pixels.evaluated(13, batch).tolist() == expected
    trainer = train.Trainer(zoo.get("lstm"), task, hidden=4, batch=4, chunk_steps=1, eval_batch=batch,
                            probe_batch=4)
    state = trainer.init_state(0, 1e-3)
    xs = (test_images.reshape(-1, P)[expected].T / 255)[..., None]
    outputs = np.asarray(model.apply(trainer.cell, task, state.params, jnp.asarray(xs, jnp.float32)),
                         np.float64)
    log_probs = outputs - np.log(np.sum(np.exp(outputs), axis=1, keepdims=True))
    labels = test_labels[expected]
    logged = jax.jit(trainer.evaluate)(state)
    assert float(logged["eval_loss"]) == pytest.approx(-np.mean(log_probs[np.arange(len(expected)), labels]),
                                                       rel=1e-5)
    assert float(logged["eval_accuracy"]) == pytest.approx(np.mean(np.argmax(outputs, 1) == labels))


def test_the_baseline_is_the_train_label_entropy_which_a_constant_predictor_reaches(tmp_path):
    _, train_labels, _, _ = fixture_images()
    task = task_of(write_folder(tmp_path / "idx"))
    counts = [int(np.sum(train_labels == c)) for c in range(10)]
    entropy = -sum(n / 40 * math.log(n / 40) for n in counts if n)
    assert task.baseline_loss == pytest.approx(entropy, rel=1e-12) and entropy < math.log(10) - 0.05
    prior = np.log(np.maximum(np.asarray(counts) / 40, 1e-30))
    logits = jnp.broadcast_to(jnp.asarray(prior, jnp.float32), (40, 10))
    losses = task.losses(logits, jnp.asarray(train_labels, jnp.int32))
    assert float(jnp.mean(losses)) == pytest.approx(entropy, rel=1e-5)


def test_the_packaged_digits_are_sklearns_split_at_1500_and_scaled_by_16():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    bunch = sklearn_datasets.load_digits()
    pixels, labels = bunch.images.reshape(1797, 64), bunch.target
    task = config.make_task(config.TaskConfig(name="pixels"), "digits.yaml")
    data = task.data
    assert (data.train_images.shape, data.test_images.shape, task.length, task.scale) == \
        ((1500, 64), (297, 64), 64, 16)
    np.testing.assert_array_equal(data.train_images, pixels[:1500])
    np.testing.assert_array_equal(data.test_labels, labels[1500:])
    frequencies = np.bincount(labels[:1500]) / 1500
    assert task.baseline_loss == pytest.approx(-np.sum(frequencies * np.log(frequencies)), rel=1e-12)
    xs, targets = task.sample_eval(jax.random.key(0), 3)
    evaluated = 1500 + np.array([0, 99, 198])  # ⌊i·297/3⌋
    np.testing.assert_allclose(np.asarray(xs)[:, :, 0], pixels[evaluated].T / 16, rtol=1e-6)
    assert np.asarray(targets).tolist() == labels[evaluated].tolist()


def test_without_scikit_learn_the_digits_ask_for_the_extra_in_one_line(tmp_path, monkeypatch):
    path = tmp_path / "digits.yaml"
    path.write_text("task: {name: pixels}\n")
    datasets.digits.cache_clear()
    monkeypatch.setitem(sys.modules, "sklearn", None)  # what `import sklearn` meets without the extra
    try:
        result = invoke("run", path, "--dry-run")
    finally:
        datasets.digits.cache_clear()
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith(f"error: {path}: task.name: pixels: the packaged digits need scikit-learn: "
                               f"pip install 'lstm-vg[data]'")


def test_the_data_set_is_an_argument_of_the_compiled_functions_not_a_constant(tmp_path):
    """2000 images of 28×28 (1.5 MB): the executables take them as an argument, their program
    text stays small, and further chunks and evaluations compile nothing."""
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (2000, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 2000, dtype=np.uint8)
    task = task_of(write_folder(tmp_path / "idx", (images, labels, images[:100], labels[:100])))
    trainer = train.Trainer(zoo.get("rnn"), task, hidden=4, batch=4, chunk_steps=2, eval_batch=8,
                            probe_batch=4)
    hash(trainer)  # static: hashable although it holds arrays
    assert trainer.data_bytes() == 2100 * 784 + 2100 * 4
    states = batched.stack([trainer.init_state(0, 1e-3)])
    chunk, evaluate = batched.compile_batched(trainer)
    lowered = chunk.lower(states)
    assert lowered.compile().memory_analysis().argument_size_in_bytes >= 2000 * 784
    assert len(lowered.as_text()) < 2000 * 784 / 4
    states, _ = chunk(states)
    evaluate(states)
    compiles = []

    def listener(name, *args, **kwargs):
        compiles.append(name) if name == "/jax/core/compile/backend_compile_duration" else None

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        for _ in range(2):
            states, _ = chunk(states)
            jax.device_get(evaluate(states))
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert compiles == []


def test_tasks_compare_by_data_order_and_pad(tmp_path):
    folder = write_folder(tmp_path / "idx")
    other = write_folder(tmp_path / "other", fixture_images(seed=1))
    assert task_of(folder, pad=3) == task_of(folder, pad=3)
    assert len({task_of(folder), task_of(folder, pad=1), task_of(folder, order="permuted"), task_of(other),
                task_of(folder, threshold=0.5)}) == 5


def test_the_connectivity_figure_marks_no_pixel():
    marked, name = marked_steps("pixels", np.random.default_rng(0).random((70, 1)))
    assert marked.size == 0 and name == ""


def run_config(path, task: dict, diagnostics=()):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({
        "task": task, "model": {"hidden": 4}, "train": {"steps": 4, "batch": 8},
        "log": {"every": 2, "eval_batch": 16, "probe_batch": 8, "diagnostics": list(diagnostics)},
        "seeds": 1}))
    return path


@pytest.mark.parametrize("source", ["idx", "digits"])
def test_run_and_plot_a_tiny_pixels_config_end_to_end(tmp_path, source):
    if source == "digits":
        pytest.importorskip("sklearn")
        task, pixels, baseline = {"name": "pixels", "pad": 6}, 64, None
    else:  # task.data relative to the config's folder, not the working directory
        write_folder(tmp_path / "idx")
        task, pixels = {"name": "pixels", "order": "permuted", "data": "../idx"}, P
        counts = np.bincount(fixture_images()[1], minlength=10) / 40
        baseline = -sum(p * math.log(p) for p in counts if p)
    path = run_config(tmp_path / "configs" / "pix.yaml", task, ("connectivity",) if source == "idx" else ())
    result = invoke("run", path, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    run = tmp_path / "out" / "pix" / "seed=0"
    summary = json.loads((run / "summary.json").read_text())
    length = pixels + task.get("pad", 0)
    assert (summary["task"], summary["length"], summary["status"]) == ("pixels", length, "done")
    assert (summary["solved_metric"], summary["solved_relation"], summary["solved_threshold"]) == \
        ("eval_accuracy", ">=", 0.8)
    if baseline is not None:
        assert summary["baseline_loss"] == pytest.approx(baseline, rel=1e-12)
    meta = json.loads((run / "meta.json").read_text())
    assert meta["task_data"]["sha256"] == datasets.load(task.get("data"), str(path.parent), "x").sha256
    with np.load(run / "gradients.npz") as grads:
        assert grads["h_norms"].shape == (3, length) and np.all(np.isfinite(grads["h_norms"]))
    (run / "summary.json").rename(tmp_path / "summary.json")  # as while it runs: T' from meta.json
    assert read.load_run(run).length == length
    (tmp_path / "summary.json").rename(run / "summary.json")
    plotted = invoke("plot", tmp_path / "out" / "pix")
    assert plotted.exit_code == 0 and "warning" not in plotted.output, plotted.output
    again = invoke("run", path, "--out", tmp_path / "out", "--resume")  # finished: kept, not retrained
    assert again.exit_code == 0, again.output
    assert json.loads((run / "summary.json").read_text()) == summary
    if source == "idx":  # other images under the same path: another run, trained again
        write_folder(tmp_path / "idx", fixture_images(seed=1))
        swapped = invoke("run", path, "--out", tmp_path / "out", "--resume")
        assert swapped.exit_code == 0, swapped.output
        retrained = json.loads((run / "meta.json").read_text())
        assert retrained["task_data"]["sha256"] != meta["task_data"]["sha256"]


@pytest.mark.parametrize("task, expected", [
    ({"name": "pixels", "order": "diagonal"},
     "task.order: 'diagonal' is not allowed; allowed: sequential, permuted"),
    ({"name": "pixels", "pad": -1}, "task.pad: must be ≥ 0, got -1"),
    ({"name": "pixels", "data": "nowhere"}, "task.data: {tmp}/nowhere: no such folder"),
    ({"name": "pixels", "data": "empty"}, "task.data: {tmp}/empty/train-images-idx3-ubyte: no such file"),
    ({"name": "pixels", "data": "a\0b"}, "task.data: 'a\\x00b': cannot read it as a folder"),
    ({"name": "pixels", "data": "idx", "length": 30}, "task.length: pixels does not take it"),
    ({"name": "pixels", "data": "idx", "variant": "hochreiter1997"}, "task.variant: pixels does not take it"),
    ({"name": "adding", "pad": 3}, "task.pad: only the pixels task takes it"),
    ({"name": "copy", "data": "idx"}, "task.data: only the pixels task takes it"),
    ({"name": "temporal_order", "order": "permuted"}, "task.order: only the pixels task takes it")])
def test_bad_pixels_settings_exit_2_with_one_line(tmp_path, task, expected):
    (tmp_path / "empty").mkdir()
    write_folder(tmp_path / "idx")
    path = run_config(tmp_path / "bad.yaml", task)
    result = invoke("run", path, "--out", tmp_path / "out")
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and "Traceback" not in result.output, result.output
    assert lines[0].startswith(f"error: {path}: {expected.format(tmp=tmp_path)}"), lines[0]
    assert not (tmp_path / "out").exists()


junk = st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=True) | st.text(max_size=6) \
    | st.lists(st.integers(), max_size=2)
pixel_sections = st.fixed_dictionaries({"name": st.sampled_from(["pixels", "adding", "copy"])}, optional={
    "order": st.sampled_from(["sequential", "permuted"]) | junk, "pad": st.integers(-2, 5) | junk,
    "data": st.sampled_from(["idx", "../idx", "nowhere", ".", "a\0b"]) | junk,
    "length": st.sampled_from([64, 100]) | junk, "threshold": junk, "variant": junk})


@settings(max_examples=150, deadline=None)
@given(pixel_sections)
def test_any_task_section_with_pixels_keys_loads_or_raises_one_line(tmp_path_factory, section):
    folder = tmp_path_factory.getbasetemp() / "pixels-hypothesis"
    if not (folder / "idx").exists():
        write_folder(folder / "idx")
        (folder / "configs").mkdir()
    try:
        c = config.from_mapping({"task": section}, "gen.yaml", folder=str(folder))
    except UserError as error:
        assert str(error).startswith("gen.yaml: task.") and "\n" not in str(error), str(error)
    else:
        task = config.make_task(c.task, "gen.yaml", str(folder))
        assert task.name == section["name"]
