"""Store fixtures live in tests/conftest.py: the relay and consumer suites use them too."""
