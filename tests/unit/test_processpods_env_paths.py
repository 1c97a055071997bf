"""Env values naming a mount path point into the mount's folder, as arguments do; the node's own
values and values from a source stay as they are."""

from __future__ import annotations

from pathlib import Path

from modelship_localcluster.processpods.spec import Mount, PodFacts, container_env


def test_env_paths_and_file_uris_under_a_mount_are_mapped_and_others_stay() -> None:
    table = [
        Mount("/mnt/checkpoints", Path("/pods/p/volumes/checkpoints")),
        Mount("/tmp", Path("/tmp/cluster/pods/p/volumes/scratch")),
    ]
    container = {
        "env": [
            {"name": "MODELSHIP_CHECKPOINT_DIR", "value": "/mnt/checkpoints"},
            {"name": "OUT", "value": "file:///mnt/checkpoints/run/1"},
            {"name": "ELSEWHERE", "value": "/mnt/other"},
            {"name": "URI", "value": "s3://models/digits"},
            {"name": "FROM_FIELD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ]
    }
    facts = PodFacts.of({"metadata": {"name": "/mnt/checkpoints"}}, "127.77.0.2", "127.0.0.1")
    env = container_env(
        container,
        facts,
        home=Path("/tmp/cluster/pods/p"),
        tmp_dir=table[1].folder,
        lookup=lambda kind, name: None,
        table=table,
    )
    assert env["MODELSHIP_CHECKPOINT_DIR"] == "/pods/p/volumes/checkpoints"
    assert env["OUT"] == "file:///pods/p/volumes/checkpoints/run/1"
    assert env["ELSEWHERE"] == "/mnt/other"
    assert env["URI"] == "s3://models/digits"
    assert env["FROM_FIELD"] == "/mnt/checkpoints", "a value from a source is not a path of ours"
    assert env["HOME"] == "/tmp/cluster/pods/p", "the node's own paths are not mapped again"
