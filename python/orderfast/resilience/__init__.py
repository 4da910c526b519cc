"""Holding up when a dependency does not: the request budget (deadline.py) and circuit breakers
(breaker.py). A leaf like observability: every layer may use it, and it uses only observability."""
