"""Env values naming a mount path point into the mount's folder, as arguments do."""

from __future__ import annotations

from pathlib import Path

from modelship_localcluster.processpods.spec import Mount, map_env


def test_env_paths_and_file_uris_under_a_mount_are_mapped_and_others_stay() -> None:
    table = [Mount("/mnt/checkpoints", Path("/pods/p/volumes/checkpoints"))]
    env = {
        "MODELSHIP_CHECKPOINT_DIR": "/mnt/checkpoints",
        "OUT": "file:///mnt/checkpoints/run/1",
        "ELSEWHERE": "/mnt/other",
        "URI": "s3://models/digits",
        "PLAIN": "checkpoints",
    }
    assert map_env(env, table) == {
        "MODELSHIP_CHECKPOINT_DIR": "/pods/p/volumes/checkpoints",
        "OUT": "file:///pods/p/volumes/checkpoints/run/1",
        "ELSEWHERE": "/mnt/other",
        "URI": "s3://models/digits",
        "PLAIN": "checkpoints",
    }
