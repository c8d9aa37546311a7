# emotune: `make run` starts everything on this machine, `make test` checks it. See README.md.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
SERVICES := $(sort $(dir $(wildcard services/*/pyproject.toml)))
PROTOS := $(wildcard proto/emotune/v1/*.proto)
DATA ?= ../shared/data/fer2013/val.npz

.PHONY: setup system-packages run test lint format proto check-proto lock bench train train-v2 train-ensemble release-v4 train-distilled eval eval-recommender data fuzz env clean

setup: $(VENV)/.installed

$(VENV)/.installed: constraints.txt $(wildcard services/*/pyproject.toml)
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"emotune needs Python 3.11, found {sys.version.split()[0]} (set PYTHON=...)"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip uv
	$(BIN)/uv pip install -q -p $(BIN)/python -r constraints.txt
	$(BIN)/uv pip install -q -p $(BIN)/python --no-deps $(addprefix -e ,$(SERVICES))
	touch $@

# Everything on one machine: the data the services read (fetched first when missing), Redis (started if
# none answers), then every service under supervisord, which restarts one that dies.
run: setup
	$(BIN)/python scripts/run_local.py

# The whole suite: the Debian packages it needs first (scripts/system_packages.sh), then lint, the
# generated-code check and pytest, which starts its own Redis on a free port (tests/conftest.py) and
# every other server it needs, and stops them.
test: setup system-packages lint check-proto
	$(BIN)/python -m pytest $(PYTEST_ARGS)

system-packages:
	bash scripts/system_packages.sh

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

proto: setup
	$(BIN)/python scripts/gen_proto.py

check-proto: setup
	$(BIN)/python scripts/gen_proto.py --check

# Re-resolve every service's dependencies into the one constraints file (pins only, no local packages).
lock:
	printf -- '-e ./%s\n' $(SERVICES) > .services.in
	$(BIN)/uv pip compile --universal -p 3.11 -q -o constraints.txt --no-header --no-annotate \
		$(foreach s,$(SERVICES),--no-emit-package emotune-$(notdir $(patsubst %/,%,$(s)))) \
		.services.in requirements-dev.in models/requirements.in
	rm -f .services.in

bench: setup bench/.venv-fer/.installed
	$(BIN)/python -m bench

# The `fer` package, the baseline of the pipeline benchmark, in a virtualenv of its own: its
# dependencies clash with the project's pins (see bench/fer-requirements.txt).
bench/.venv-fer/.installed: bench/fer-requirements.txt
	test -x bench/.venv-fer/bin/python || $(PYTHON) -m venv bench/.venv-fer
	bench/.venv-fer/bin/python -m pip install -q uv
	bench/.venv-fer/bin/uv pip install -q -p bench/.venv-fer/bin/python --no-deps -r bench/fer-requirements.txt
	touch $@

# Evaluate the recommender against its baselines; writes services/recommender/REPORT.md.
eval-recommender: setup
	$(BIN)/python -m emotune_recommender.evaluate

# Fetch the data sets that are missing from EMOTUNE_DATA_DIR (default ../shared/data), from their public
# sources (EMOTUNE_DATA_BASE_URL, default https://github.com).
data: setup
	$(BIN)/python scripts/fetch_data.py

# Train the emotion CNN (hours on 2 CPU cores; run it again to resume), export a new version.
train: setup
	$(BIN)/python -m models.emotion_cnn.train $(TRAIN_ARGS)

# Version 2 (issue 10/12), as it was made: version 1's network trained from scratch, 150 epochs of SGD with
# Nesterov momentum and a cosine schedule, label smoothing and random erasing (about 5 hours on 2 CPU cores;
# run it again to resume from its checkpoint, models/emotion_cnn/checkpoints/long). The release then scores
# it and version 1, with one or both views, within version 1's cost of 2 forward passes a face, on validation,
# and exports the best with its calibration fitted inside, as version 2 (move the committed one aside first).
V2_RUN = models/emotion_cnn/checkpoints/long
train-v2: setup
	$(BIN)/python -m models.emotion_cnn.train --epochs 150 --optimizer sgd --learning-rate 0.01 --warmup 2 \
		--label-smoothing 0.1 --erasing 0.5 --seed 11 --checkpoint-dir $(V2_RUN) --no-export
	$(BIN)/python -m models.emotion_cnn.release --weights $(V2_RUN)/best.weights.h5 --member models/emotion_cnn/1 \
		--budget 2 --version 2

# Version 3 (issue 10/12), as it was made: a second network like version 2's with another seed. The release
# weighs it beside the networks of versions 1 and 2, one view or both, within 2 forward passes a face, and
# exported it with its mirror view (an ensemble of the two long networks, one view each, scored below it).
# Its run checkpoints to models/emotion_cnn/checkpoints/long-b (run it again to resume); the release exports
# the next free version (move the committed one aside to make version 3 again).
train-ensemble: setup
	$(BIN)/python -m models.emotion_cnn.train --epochs 150 --optimizer sgd --learning-rate 0.01 --warmup 2 \
		--label-smoothing 0.1 --erasing 0.5 --seed 12 --checkpoint-dir models/emotion_cnn/checkpoints/long-b --no-export
	$(BIN)/python -m models.emotion_cnn.release --weights models/emotion_cnn/checkpoints/long-b/best.weights.h5 \
		--member models/emotion_cnn/2 --member models/emotion_cnn/1 --budget 2

# Version 4 (issue 10/12), as it was made: no training, the release of versions 3 and 2 choosing by the accuracy
# each candidate would serve once calibrated (cross-fitted), which weighs the two long networks one view each
# above version 3's network with its mirror (67.94% against 67.64%), at the same 2 passes a face. It exports
# the next free version (move the committed one aside to make version 4 again).
release-v4: setup
	$(BIN)/python -m models.emotion_cnn.release --member models/emotion_cnn/3 --member models/emotion_cnn/2 --budget 2

# The next step (issue 10/12): a student like version 2's network, trained towards the mean served probabilities
# of versions 2 and 3 (4 passes a face, 68.5% on validation; models/emotion_cnn/teacher.py) mixed half and half
# with the labels, to serve at 2. It spans sessions: its checkpoint (models/emotion_cnn/checkpoints/distilled,
# with the teacher's targets) is committed between them, replaced each time. The release then weighs it beside
# the networks of versions 3 and 2, alone and with each (version 4 is those two, one view each); when none of
# the candidates with the student beats them, it says so and exports nothing.
DISTILLED_RUN = models/emotion_cnn/checkpoints/distilled
train-distilled: setup
	$(BIN)/python -m models.emotion_cnn.train --epochs 150 --optimizer sgd --learning-rate 0.01 --warmup 2 \
		--erasing 0.5 --seed 13 --teacher models/emotion_cnn/2 --teacher models/emotion_cnn/3 --teacher-weight 0.5 \
		--checkpoint-dir $(DISTILLED_RUN) --no-export
	$(BIN)/python -m models.emotion_cnn.release --weights $(DISTILLED_RUN)/best.weights.h5 \
		--member models/emotion_cnn/3 --member models/emotion_cnn/2 --budget 2

# Evaluate the latest version on DATA (an .npz with x uint8 [N,48,48], y uint8 [N]).
eval: setup
	$(BIN)/python -m models.emotion_cnn.evaluate --data $(DATA)

# Fuzz the stream codec and the image checks (atheris), FUZZ_SECONDS each; corpora and crashes stay in fuzz/.
FUZZ_SECONDS ?= 600
fuzz: setup
	$(BIN)/python fuzz/seeds.py fuzz/corpus
	mkdir -p fuzz/artifacts
	$(BIN)/python fuzz/fuzz_codec.py fuzz/corpus/codec -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=fuzz/artifacts/
	$(BIN)/python fuzz/fuzz_frames.py fuzz/corpus/frames -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=fuzz/artifacts/

# .env for docker compose: .env.example with a fresh random value for each password. An existing .env is
# kept (Redis was set up with its passwords); FORCE=1 writes new ones.
env:
	$(PYTHON) scripts/make_env.py $(if $(FORCE),--force)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
