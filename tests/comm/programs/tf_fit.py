"""Rank program: a 2-worker MultiWorkerMirroredStrategy fit with TF_CONFIG agreed through the communicator."""

import json
import sys

import numpy as np

import deeprc.comm as dc
from deeprc.comm.tf import tf_strategy

comm = dc.init(sys.argv[1], timeout=120)
cfg = dc.tf_config(comm)  # sets TF_CONFIG and TF_USE_LEGACY_KERAS=1 before TF loads
import tensorflow as tf  # noqa: E402

strategy = tf_strategy(comm)
assert strategy.num_replicas_in_sync == comm.size, strategy.num_replicas_in_sync
rng = np.random.default_rng(7)
x = rng.standard_normal((64, 8, 1)).astype("float32")
y = x.sum(axis=1)
with strategy.scope():
    model = tf.keras.Sequential([tf.keras.layers.LSTM(4, input_shape=(8, 1)), tf.keras.layers.Dense(1)])
    model.compile(optimizer=tf.keras.optimizers.SGD(0.05), loss="mse")
ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
hist = model.fit(ds, epochs=2, verbose=0)
loss = float(hist.history["loss"][-1])
losses = comm.allgather(loss)
print(json.dumps({"rank": comm.rank, "workers": cfg["cluster"]["worker"], "losses": losses}), flush=True)
assert all(abs(v - losses[0]) < 1e-6 for v in losses), losses
