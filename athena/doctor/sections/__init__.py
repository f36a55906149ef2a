"""The doctor's sections, one module each, in report order (the audit's is in ../audit.py);
`athena.doctor.checks.run_doctor` composes them."""
