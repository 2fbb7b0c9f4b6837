# Conveniences; the README's two commands are the scripts themselves (no make needed).
.PHONY: setup demo test bench
setup: ; bash installers/setup.sh
demo:  ; bash installers/demo.sh
test:  ; bash installers/test.sh
bench: setup ; bash -c 'source installers/env.sh && .venv/bin/python bench/run.py'
