"""The autoscaler's core: the scaling decision, the Prometheus client, and the queries.

Independent of the API types and of the Kubernetes client: the controller's autoscaler loop
turns a ModelDeployment's spec into these plain types and writes the results itself.
"""
