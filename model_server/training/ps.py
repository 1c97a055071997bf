"""ParameterServerStrategy: workers and parameter servers run a tf.distribute.Server and wait;
the chief coordinates with a ClusterCoordinator (in loop.py's training loop: Keras 3's fit() does
not drive a coordinator)."""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from .cluster import Cluster


def serve(cluster: Cluster) -> int:
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    print(f"task {cluster.name}: serving the parameter-server cluster", flush=True)
    server = tf.distribute.Server(
        resolver.cluster_spec(),
        job_name=cluster.task_type,
        task_index=cluster.task_index,
        protocol=resolver.rpc_layer or "grpc",
        start=True,
    )
    server.join()  # until the pod is deleted: the chief's success ends the job
    return 0


def coordinator(strategy: Any) -> Any:
    return tf.distribute.coordinator.ClusterCoordinator(strategy)
