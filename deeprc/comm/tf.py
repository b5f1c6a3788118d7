"""TensorFlow multi-worker settings agreed through a DeepRC communicator.

Keras 3 (TF >= 2.16) breaks ``MultiWorkerMirroredStrategy`` + ``model.fit``; with
``tf_keras`` installed, ``TF_USE_LEGACY_KERAS=1`` (set here before TF is imported) makes
``tf.keras`` the working Keras 2. Run TF multi-worker training in fresh processes: a TF
collective context cannot be re-initialised in a long-lived one.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from deeprc.comm.base import Communicator
from deeprc.comm.rendezvous import free_port, my_address


def tf_config(comm: Communicator, set_env: bool = True) -> dict:
    """TF_CONFIG with one free port per worker (agreed by allgather); also sets the env by default."""
    here = f"{my_address(comm.num_nodes == 1)}:{free_port()}"
    workers = comm.allgather(here)
    config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": comm.rank}}
    if set_env:
        os.environ["TF_CONFIG"] = json.dumps(config)
        if "tensorflow" not in sys.modules:
            os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    return config


def tf_strategy(comm: Communicator) -> Any:
    """MultiWorkerMirroredStrategy on comm's ranks: NCCL collectives with GPUs, ring on CPU."""
    if "TF_CONFIG" not in os.environ:
        tf_config(comm)
    import tensorflow as tf

    gpus = len(tf.config.list_physical_devices("GPU"))
    everyone = comm.allreduce(gpus, op="min")
    impl = tf.distribute.experimental.CommunicationImplementation
    options = tf.distribute.experimental.CommunicationOptions(implementation=impl.NCCL if everyone else impl.RING)
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
