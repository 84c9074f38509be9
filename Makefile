# Two entry points, both self-installing: `make run` (the optimizer study) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-slow test-all lint ui optuna-ui clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m sweeps.run +experiment=optimizers $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow" $(ARGS)

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow $(ARGS)

test-all: $(STAMP)
	$(PY) -m pytest -q $(ARGS)

# One worker and no job runner: answers in about 5 s holding 0.5 GB instead of 10-14 s and
# growing to 3.4 GB (docs/DESIGN.md, "The lean MLflow UI start"; benchmarks/ui_start.py).
ui: $(STAMP)
	@echo "Each study prints the URL of its runs table; an experiment's runs are at"
	@echo "http://127.0.0.1:5000/#/experiments/ID/runs?workflowType=machine_learning"
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(VENV)/bin/mlflow ui --workers 1 \
		--backend-store-uri sqlite:///mlflow.db

# optuna-dashboard on a search's Optuna storage, to watch its trials live: the default is
# where a search beside the default tracking store puts it; STORAGE=URL for another
# (postgresql://..., a journal file). One gunicorn worker, like `make ui`.
STORAGE ?= sqlite:///optuna.db
OPTUNA_PORT ?= 8080
optuna-ui: $(STAMP)
	@case "$(STORAGE)" in sqlite:///*) test -f "$(STORAGE:sqlite:///%=%)" || { \
		echo "no Optuna storage $(STORAGE): run a search first" \
			"(python -m sweeps.run +experiment=hparam_search) or give STORAGE=URL"; exit 2; };; esac
	@echo "Optuna dashboard on $(STORAGE): http://127.0.0.1:$(OPTUNA_PORT)"
	$(VENV)/bin/optuna-dashboard --host 127.0.0.1 --port $(OPTUNA_PORT) "$(STORAGE)"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache
