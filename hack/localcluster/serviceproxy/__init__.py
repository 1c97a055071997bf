"""The local cluster's service proxy: what kube-proxy and cluster DNS do on a real cluster, done
as an HTTP forward proxy on loopback.

Clients name a Service as a real cluster's pods would (`http://<svc>.<ns>.svc:8501/...`, or the
Service's ClusterIP) and send the request through this proxy (`curl -x`, `http_proxy`, gRPC's
`grpc.http_proxy`). The proxy picks a ready endpoint of the Service, kept from watches of
Services and Pods, and relays the connection's bytes to it.

As kube-proxy balances TCP connections, not requests, a client connection stays with the
endpoint chosen for its first request for as long as its requests name that Service port. A
client that wants every request balanced opens a new connection per request. A request naming
another Service moves the connection there (urllib3, behind `requests`, pools proxy
connections across hosts), which assumes the client waits for each answer before its next
request (no pipelining across Services). CONNECT tunnels and upgraded connections are raw
bytes to one endpoint.
"""
