# The two set-up commands (see README.md):
#   make up     create .venv, install Racklet, start a 5-unit twin rack (Ctrl-C stops it)
#   make test   create .venv, install what the tests need, run the whole suite
#   make docs   build the docs site (MkDocs, strict) and the RFC PDFs into build/site
#   make web    rebuild the dashboard's bundle from the pinned npm packages (scripts/build-web)
# Extra arguments for `racklet up`: make up ARGS="--units 8 --speed 10"

.PHONY: up test bench venv clean web docs

up: .venv/.installed
	.venv/bin/racklet up $(ARGS)

test:
	./scripts/test

bench: .venv/.installed
	.venv/bin/python -m bench $(ARGS)

web:
	./scripts/build-web

docs: .venv/.installed
	.venv/bin/python tools/docs/build.py

venv: .venv/.installed

.venv/.installed: pyproject.toml
	./scripts/venv
	@touch $@

clean:
	rm -rf .venv .racklet .pytest_cache .mypy_cache .ruff_cache
