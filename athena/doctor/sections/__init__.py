"""The doctor's sections in report order (the audit's is ../audit.py), composed by checks.py."""
