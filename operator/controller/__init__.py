"""Reconciliation: snapshot of the world in, plan of API calls out, then the calls. One runtime
(base.py) for every kind; ModelDeployment's controller here, TrainingJob's in trainingjob/."""
