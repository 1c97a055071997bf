"""Generated protobuf and gRPC code (`make protos`); the .proto sources sit beside it."""
