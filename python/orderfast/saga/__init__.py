"""The post-order saga on Temporal (the ``temporal`` extra, ``orderfast worker temporal``): one
workflow per order, started from the outbox's ``order.created``, that waits for the payment and, when
the payment time runs out, compensates the reservation by cancelling the order as ``expired``."""
