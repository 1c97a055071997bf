"""gRPC's unary calls served over our own HTTP/2 on the event loop (see connection.py).

grpcio's server costs several hundred microseconds of Python and C-core work per call on top of
the model; REST costs a few tens. This transport brings gRPC down to REST's cost while the
servicers, written against grpcio's generated code, stay as they are.
"""
