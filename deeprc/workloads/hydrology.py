"""TensorFlow rainfall-runoff models (LSTM, GRU, TCN) on daily forcing sequences.

Import this module only in a process that runs TensorFlow training: it selects legacy Keras
(`tf_keras`, TF_USE_LEGACY_KERAS=1) before TensorFlow loads, which MultiWorkerMirroredStrategy
needs with TF 2.16+ (see NOTES).
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

ARCHS = ("lstm", "gru", "tcn")


def windows(features: np.ndarray, target: np.ndarray, seq_len: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sequences ending at each index in `rows` (rows >= seq_len - 1): X (n, seq_len, f), y (n,)."""
    view = np.lib.stride_tricks.sliding_window_view(features, seq_len, axis=0)  # (T-seq+1, f, seq)
    x = view[rows - seq_len + 1].transpose(0, 2, 1)
    return np.ascontiguousarray(x, dtype=np.float32), target[rows].astype(np.float32)


def build_model(arch: str, seq_len: int, n_features: int, units: int, dropout: float = 0.0) -> Any:
    """A Keras model mapping (seq_len, n_features) to one flow value."""
    import tensorflow as tf

    keras = tf.keras
    inp = keras.Input(shape=(seq_len, n_features))
    if arch == "lstm":
        h = keras.layers.LSTM(units)(inp)
    elif arch == "gru":
        h = keras.layers.GRU(units)(inp)
    elif arch == "tcn":
        h = inp
        for dilation in (1, 2, 4, 8, 16, 32):
            if dilation >= seq_len:
                break
            h = keras.layers.Conv1D(units, 3, padding="causal", dilation_rate=dilation, activation="relu")(h)
        h = keras.layers.Lambda(lambda t: t[:, -1, :])(h)
    else:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    if dropout:
        h = keras.layers.Dropout(dropout)(h)
    out = keras.layers.Dense(1)(h)
    return keras.Model(inp, out)


def tf_config(comm: Any) -> dict:
    """TF_CONFIG for `comm` (deeprc.comm.tf_config: one worker address per rank)."""
    from deeprc.comm import tf_config as comm_tf_config

    cfg = comm_tf_config(comm)
    return json.loads(cfg) if isinstance(cfg, str) else cfg


def fit_predict(x_train: np.ndarray, y_train: np.ndarray, x_eval: np.ndarray, *, arch: str, units: int,
                epochs: int, batch_size: int, lr: float, seed: int, comm: Any, threads: int = 1,
                progress: Callable[[int, float], None] | None = None) -> tuple[np.ndarray, list[float]]:
    """Train on (x_train, y_train), data-parallel over `comm` when it has several ranks; predict x_eval."""
    if comm.size > 1 and "TF_CONFIG" not in os.environ:
        os.environ["TF_CONFIG"] = json.dumps(tf_config(comm))
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(max(1, threads))
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # already initialised in this process
    tf.keras.utils.set_random_seed(seed)
    strategy = tf.distribute.MultiWorkerMirroredStrategy() if comm.size > 1 else tf.distribute.get_strategy()
    with strategy.scope():
        model = build_model(arch, x_train.shape[1], x_train.shape[2], units)
        model.compile(optimizer=tf.keras.optimizers.Adam(lr, clipnorm=1.0), loss="mse")
    data = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(
        len(x_train), seed=seed, reshuffle_each_iteration=True).batch(batch_size * comm.size)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    data = data.with_options(options)

    class Report(tf.keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if progress is not None:
                progress(epoch + 1, float((logs or {}).get("loss", float("nan"))))

    history = model.fit(data, epochs=epochs, verbose=0, callbacks=[Report()])
    pred = model.predict(x_eval, batch_size=1024, verbose=0).ravel()
    return pred, [float(v) for v in history.history["loss"]]
