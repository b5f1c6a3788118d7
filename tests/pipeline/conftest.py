"""The pipeline tests' fixtures (the shared pilot, stage functions, spec writer) live in tests/conftest.py:
the hostile-input suite (tests/hostile) runs on the same one pilot."""
