"""The gRPC ingress (``orderfast serve-grpc``, the ``grpc`` extra): the same services, guard and
problems as the HTTP API, over ``orderfast.v1.Orders`` (rpc/v1/orders.proto)."""
