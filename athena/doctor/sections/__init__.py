"""The doctor's sections, one module each, in report order: system, packages, imports, mlx,
memory, model (with --model), audit, smoke. `athena.doctor.checks.run_doctor` composes them."""
