"""A kubelet for the local cluster that runs pods as processes on this machine.

Each pod bound to one of its nodes gets a loopback address of its own, its volumes become
folders, its init containers and containers become process groups (their programs come from an
image → program table), and what happens is reported in the pod's status the way a kubelet
reports it. Pods with `hostname` and `subdomain` resolve each other's
`<hostname>.<subdomain>.<namespace>.svc` names, and a program listening on the wildcard address
listens on its pod's address (sandbox.py).
`python -m modelship_localcluster.processpods --help` lists the options.
"""
