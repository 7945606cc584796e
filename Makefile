# The two commands a newcomer needs: `make demo` and `make test`.
VENV := .venv
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: venv demo test lint bench

venv:
	@bash scripts/setup-venv.sh

demo: venv
	$(VENV)/bin/parallax models download --quick || true
	$(VENV)/bin/parallax demo

test: venv
	HF_HUB_OFFLINE=1 $(VENV)/bin/python -m pytest -q --durations=40

lint: venv
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy pipeline
