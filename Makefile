# The front door: `make run` starts the real thing, `make test` runs every test. Both set themselves up.
.PHONY: all install build dist sea run test test-build test-reliability typecheck lint unit services bench bench-ladder wrk clean
# A recipe that fails leaves no target behind: tsc writes dist/ even when it reports errors, and a
# dist/cli.js newer than its sources would make the next `make` skip the build that failed.
.DELETE_ON_ERROR:

NODE_MODULES := node_modules/.package-lock.json
CERT := certs/localhost.crt
CERT_KEY := certs/localhost.key
# Every TypeScript file under src/, as test/helpers-spawn.ts counts them to tell a stale test-build/; not
# a dotfile (an editor's lock file, `.#name.ts`, may be a link to nothing).
SOURCES := $(shell find src -name '*.ts' ! -name '.*')

all: build

install: $(NODE_MODULES)
$(NODE_MODULES): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

build: dist/cli.js
src/generated/validators.ts: src/schemas.ts scripts/generate-validators.ts $(NODE_MODULES)
	npx tsx scripts/generate-validators.ts
	@touch $@
# tsc builds the library (dist/index.js, ...); dist/cli.js is then the CLI in one file (scripts/bundle-cli.ts).
# dist/ is emptied of both first (scripts/clean-dist.ts): a source renamed would leave its old outputs.
dist/cli.js: $(NODE_MODULES) $(SOURCES) src/generated/validators.ts tsconfig.json tsconfig.build.json scripts/bundle-cli.ts \
		scripts/cli-loader.js scripts/code-cache.mjs scripts/clean-dist.ts
	npx tsx scripts/clean-dist.ts
	npx tsc -p tsconfig.build.json
	npx tsx scripts/bundle-cli.ts

# One file to ship: the CLI and all it imports bundled into dist/segment-endpoint.mjs, which runs on a
# VM with nothing but node (no node_modules, no package.json). See scripts/bundle.ts.
dist: dist/segment-endpoint.mjs
dist/segment-endpoint.mjs: $(NODE_MODULES) $(SOURCES) src/generated/validators.ts package.json scripts/bundle.ts
	npx tsx scripts/bundle.ts

# One file that needs nothing installed, not even node: the bundle injected into a copy of this node
# (a single executable application), Linux x64, out of the npm package. See scripts/sea.ts.
sea: dist/segment-endpoint-linux-x64
dist/segment-endpoint-linux-x64: $(NODE_MODULES) $(SOURCES) src/generated/validators.ts package.json scripts/sea.ts
	npx tsx scripts/sea.ts

# A self-signed certificate for localhost, made on first run. Private keys are never committed.
$(CERT):
	@mkdir -p certs
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 825 \
		-subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1 \
		-keyout $(CERT_KEY) -out $(CERT) 2>/dev/null
	@chmod 600 $(CERT_KEY)

# Development key `dev-key`: curl -k -u dev-key: https://localhost:8443/ ...
PORT ?= 8443
run: build $(CERT)
	node dist/cli.js --cert $(CERT) --key $(CERT_KEY) --api-key dev-key --host 127.0.0.1 --port $(PORT) --out ./data

typecheck: $(NODE_MODULES)
	npx tsc -p tsconfig.json --noEmit

lint: $(NODE_MODULES)
	npx biome check .

# Two test files a core at a time: node's default is one fewer than the cores, and much of the suite
# waits on processes, sockets and timers rather than the CPU. On this 2-core machine, under coverage
# (2026-12-05): 5 min 22 s two at a time, 4 min 50 s three, 4 min 17 s four; four beside a process
# spinning on one core, 5 min 25 s, and on each core, 5 min 13 s; every test passed. At most 8: a file
# may start a PostgreSQL and a Redis server of its own, and each syncs its writes to the same disk.
TEST_JOBS := $(shell n=$$((2 * $$(nproc))); [ $$n -gt 8 ] && n=8; echo $$n)
NODE_TEST := node --conditions=segment-endpoint-source --import tsx --test --test-concurrency=$(TEST_JOBS)

# The CLI the tests start (test/helpers-spawn.ts): src/ compiled module by module as tsx compiles it, with
# source maps, from which c8 counts the lines of src/ they run as it counts the tests' own imports through
# tsx (scripts/test-build.ts, which stamps test-build/built with the time its build began). Through tsx
# each of the suite's ~380 starts cost ~0.4 s more CPU.
test-build: test-build/built
test-build/built: $(NODE_MODULES) $(SOURCES) src/generated/validators.ts tsconfig.json scripts/test-build.ts
	npx tsx scripts/test-build.ts

# Every test, the reliability suite included, under the coverage gate. test/dist.test.ts runs the
# single-file bundle, hence `dist`; test/sea.test.ts runs the single executable, hence `sea`.
unit: build dist sea services test-build/built
	npx c8 $(NODE_TEST) test/*.test.ts test/embedding/*.test.ts test/reliability/*.test.ts

# The PostgreSQL and Redis servers (and a PgBouncer) the tests start for themselves (each in a temporary
# directory, on a free port): installed from Debian's packages when missing.
services:
	@sh scripts/install-services.sh

# The reliability suite alone: kill -9 and SIGTERM under load, overload, slowloris, fuzz, duplicates.
# Its figures land in .reliability/last-run.json.
test-reliability: build services test-build/built
	$(NODE_TEST) test/reliability/*.test.ts

test: typecheck lint unit

# Side by side in one run, pinned (server on core 0, wrk on core 1), 5 interleaved rounds: the reference
# servers of bench/anchors/ and segment-endpoint as shipped (dist/cli.js), under wrk from the Debian
# package (this target installs it when it can). See bench/README.md.
bench: build wrk services
	node --import tsx bench/run.mjs
	@npx biome format --write bench/last-run.json >/dev/null
	taskset -c 0 node bench/pipeline.mjs --json bench/last-pipeline.json
	@npx biome format --write bench/last-pipeline.json >/dev/null
	taskset -c 0 node bench/auth-keys.mjs

# The ablation ladder under wrk: the parse floor, each rung of bench/ladder.mjs and the no-op endpoint,
# 3 interleaved rounds (about 6 minutes). Written to bench/last-ladder.json.
bench-ladder: build wrk
	BENCH_SERVERS=parse,rung0,rung1,rung2,rung3,rung4,rung5,rung6,rung7,noop BENCH_ROUNDS=3 \
		BENCH_FIXED_SECONDS=0 BENCH_JSON=bench/last-ladder.json node --import tsx bench/run.mjs
	@npx biome format --write bench/last-ladder.json >/dev/null

wrk:
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		(apt-get install -y -qq wrk >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq wrk >/dev/null 2>&1)); } || \
		{ echo "make bench needs wrk (apt-get install wrk)"; exit 1; }

clean:
	rm -rf dist coverage test-build
