# The two Quick start commands, and a few more for development.
.PHONY: demo test lint bench setup

setup:
	@scripts/bootstrap

demo: setup
	.venv/bin/clanpulse demo

test: setup
	.venv/bin/pytest

lint: setup
	.venv/bin/ruff check src tests bench
	.venv/bin/ruff format --check src tests bench
	.venv/bin/mypy

bench: setup
	.venv/bin/python bench/run_all.py
