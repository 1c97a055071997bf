"""The local cluster's components, one module each: how to run it (a pure builder) and how to
tell it is healthy. `LocalCluster` decides the order they start in."""
