"""How each documented command is run, what the text promises it shows, or why it is not run.

Every command `extract.all_commands()` finds must have an entry here, and every entry must still
be in a document (tests/unit/test_docs_plan.py), so a command added to a document without a way
to run it fails the unit suite. Commands that cannot run here are listed in SKIPPED, with the
reason, and nowhere else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# A regex the output must match for the second and later `make seed`: nothing new.
SEED_ADDS_NOTHING = r"users 0, groups 0, memberships 0, friendships 0, posts 0"


@dataclass(frozen=True)
class Step:
    """One documented command as the test runs it in the reader's terminal."""

    expect: tuple[str, ...] = ()  # regexes the output must contain (what the text promises)
    reject: tuple[str, ...] = ("Traceback",)  # regexes the output must not contain
    timeout: float = 300
    ok_codes: tuple[int, ...] = (0,)
    # A live command (a log tail, a live table) runs until `expect` shows, then gets Ctrl-C.
    live: bool = False
    # An interactive program: these lines are typed at its prompt, the last one quits it.
    typed: tuple[str, ...] = ()
    # What a reader substitutes: the command as run (a placeholder filled, `uv run` added).
    run_as: str | None = None
    # The commands run for this one, each with what it must show, when its comment names
    # alternatives ("or neo4j, documents, kafka").
    variants: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # Run after the step, as the reader would next (a stack stopped by the step is started).
    then: str | None = None
    # Wait until every projection has caught up before running (the text assumes a quiet stack).
    settle: bool = False
    # Run only the first time the text appears; later appearances were shown to work above.
    once: bool = True


UP = Step(
    expect=(r"CampusConnect is up", r"Next: make seed", r"/dashboard"),
    timeout=900,
)
SEED = Step(expect=(r"seeded \(new rows\): users \d+",), timeout=600, once=False)
PROJECTIONS = ("graph", "cache", "timeseries")

PLAN: dict[str, Step] = {
    # README.md
    "make up": UP,
    "make down": Step(expect=(r"stopped|not running",), then="make up"),
    "make status": Step(expect=(r"gateway\s+RUNNING", r"kafka\s+RUNNING")),
    "make logs": Step(expect=(r"\[|INFO|\d\d:\d\d",), live=True, timeout=60),
    "make clean": Step(expect=(r"data wiped",), then="make up"),
    "make seed": SEED,
    "make lint": Step(expect=(r"Success: no issues found",), timeout=600),
    "make help": Step(expect=(r"make up", r"make test")),
    "uv run campus --help": Step(expect=(r"reconcile", r"rebuild", r"demo")),
    "uv run campus lag": Step(expect=(r"graph", r"cache", r"timeseries"), live=True, timeout=60),
    "uv run campus pause graph": Step(expect=(r"graph",)),
    "uv run campus resume graph": Step(expect=(r"graph",)),
    "uv run campus dlq list graph": Step(expect=(r"campus\.dlq\.graph: \d+ dead letters",)),
    "uv run campus reconcile": Step(settle=True, timeout=600),
    "uv run campus rebuild timeseries": Step(timeout=600),
    "make test-unit": Step(expect=(r"passed",), timeout=600),
    "campus reconcile": Step(run_as="uv run campus reconcile", settle=True, timeout=600),
    "campus dlq replay": Step(
        run_as="uv run campus dlq replay graph", expect=(r"replayed \d+ dead letter",)
    ),
    "campus rebuild <projection>": Step(run_as="uv run campus rebuild graph", timeout=600),
    "make logs C=X": Step(run_as="make logs C=gateway", expect=(r"\S",), live=True, timeout=60),
    "make clean && make up": Step(expect=UP.expect, timeout=900, then="make seed"),
    # docs/teaching-guide.md
    "set -a; . ./.env; PGPASSWORD=$CAMPUS_USERS_DB_PASSWORD psql -h 127.0.0.1 -U campus_users "
    "campus": Step(
        typed=("select count(*) as user_count from users;", r"\q"), expect=("user_count",)
    ),
    "set -a; . ./.env; REDISCLI_AUTH=$CAMPUS_REDIS_PASSWORD redis-cli": Step(
        typed=("PING", "quit"), expect=("PONG",)
    ),
    "curl -s -X POST localhost:8000/users -H 'content-type: application/json' -d '{\"email\": "
    '"newuser@university.edu", "full_name": "New User", "password": "a-long-password"}\'': Step(
        expect=(r'"id":\s*\d+', r"newuser@university.edu")
    ),
    "TOKEN=$(curl -s -X POST localhost:8000/auth/token -d "
    "'username=newuser@university.edu&password=a-long-password' | jq -r .access_token)": Step(
        then='test "${#TOKEN}" -gt 20'
    ),
    "curl -s -w ' %{http_code}\\n' -X POST localhost:8000/users/1/friends/2 "
    '-H "Authorization: Bearer $TOKEN"': Step(expect=(r" 403$",)),
    "uv run python -m bench --quick friends": Step(
        expect=(r"friend-of-friend", r"written to"), reject=("Traceback", "Error"), timeout=900
    ),
    "uv run python -m bench --quick graphdepth": Step(
        expect=(r"reach at depth 3", r"written to"), reject=("Traceback", "Error"), timeout=900
    ),
    "set -a; . ./.env": Step(),
    # redis-cli in a terminal quotes replies and numbers the items of a list.
    "REDISCLI_AUTH=$CAMPUS_REDIS_PASSWORD redis-cli ZINCRBY exercise:points 1 1": Step(
        expect=(r'^"\d+"$',)
    ),
    "REDISCLI_AUTH=$CAMPUS_REDIS_PASSWORD redis-cli ZREVRANGE exercise:points 0 9 WITHSCORES": Step(
        expect=(r'^1\) "1"$',)
    ),
    "REDISCLI_AUTH=$CAMPUS_REDIS_PASSWORD redis-cli ZREVRANGE leaderboard:points 0 9 "
    "WITHSCORES": Step(expect=(r'^ ?1\) "\d+"$', r'^ ?2\) "\d+"$')),
    'redis-benchmark -a "$CAMPUS_REDIS_PASSWORD" -n 100000 -q -t zadd': Step(
        expect=(r"ZADD: [\d.]+ requests per second",), timeout=120
    ),
    "uv run campus rebuild cache": Step(timeout=600),
    # The guide's table: what answers 503 while each store is down; then every request answers.
    "make demo-failure STORE=redis": Step(
        variants=(
            ("make demo-failure STORE=redis", (r"leaderboard \(Redis\)\s+\S\s+503",)),
            ("make demo-failure STORE=neo4j", (r"friends \(Neo4j\)\s+\S\s+503",)),
            ("make demo-failure STORE=documents", (r"limit=50 \(FerretDB\)\s+\S\s+503",)),
            ("make demo-failure STORE=kafka", (r"while Kafka is down: 201",)),
        ),
        expect=(r"stopped", r"every request answers again"),
        timeout=600,
        settle=True,
    ),
    ".venv/bin/supervisorctl -c .stack/run/supervisord.conf stop redis": Step(
        expect=(r"redis: stopped",)
    ),
    "curl -s -o /dev/null -w '%{http_code}\\n' localhost:8000/recommendations/leaderboard": Step(
        expect=(r"^503$",)
    ),
    ".venv/bin/supervisorctl -c .stack/run/supervisord.conf start redis": Step(
        expect=(r"redis: started",), then="make up"
    ),
    "curl 'localhost:8000/recommendations/users/1/friends?strategy=mutual'": Step(
        expect=(r"^\[",), settle=True
    ),
    "curl 'localhost:8000/recommendations/users/1/friends?strategy=groups'": Step(expect=(r"^\[",)),
    "curl 'localhost:8000/recommendations/users/1/friends?strategy=combined'": Step(
        expect=(r"^\[",)
    ),
    ".venv/bin/supervisorctl -c .stack/run/supervisord.conf restart graph": Step(
        expect=(r"graph: started",), then="make up"
    ),
    "make demo-consistency": Step(
        expect=(r"converged .* ms", r"graph", r"cache", r"timeseries"), settle=True, timeout=600
    ),
}

# Documented commands that are not run, and why. Nowhere else lists them.
SKIPPED: dict[str, str] = {
    "make chaos MINUTES=10": "a 10-minute soak that stops and kills the stack's processes; "
    "tests/e2e/test_faults.py runs the same faults",
    "campus chaos": "the soak behind make chaos (see there)",
    "make test": "this suite runs inside `make test`: running it here would recurse",
    "make test-docs": "this suite itself: running it here would recurse",
    "make bench": "the full benchmark suite takes about 100 minutes and is its own target; "
    "benchmarks never run inside `make test`",
    "make bench-topologies": "wipes the stack and starts the single node, then the cluster "
    "topology (about 35 minutes); benchmarks never run inside `make test`",
    "make bench QUICK=1": "a benchmark run (about 10 minutes on a quiet machine) that writes a "
    "report into bench/results; benchmarks never run inside `make test`",
    # README "With Docker": CI runs these through `make test-containers` and `make test-compose`
    # (tests/containers, tests/compose), which build the images, bring compose up and down.
    "make images": "builds every image (minutes, Docker); `make test-containers` and "
    "`make test-compose` run it in CI",
    "make compose-up": "tests/compose brings the compose stack up itself (make test-compose)",
    "make compose-down": "tests/compose tears the compose stack down itself (make test-compose)",
    "make test-containers": "its own CI target (.ci/run), never inside `make test`",
    "make test-compose": "its own CI target (.ci/run), never inside `make test`",
    "make clean && make up TOPOLOGY=cluster": "starts the cluster topology (minutes, about "
    "4 GiB); `make test-cluster` starts it and kills its members",
    "make test-cluster": "its own target (the cluster topology, minutes), never inside `make test`",
    "stack/docker/compose.sh cli reconcile": "needs the compose stack up; tests/compose runs "
    "`compose.sh cli reconcile`",
    "stack/docker/compose.sh exec postgres psql -U postgres": "needs the compose stack up; "
    "tests/compose runs `compose.sh exec -T postgres psql -U postgres`",
}


def normalize(text: str) -> str:
    """A command as the plan names it: continuation lines joined, a trailing comment dropped."""
    joined = re.sub(r"\\\n\s*", "", text)
    return re.sub(r"\s+#[^'\"]*$", "", joined).strip()


def split_block(block: str) -> list[str]:
    """The commands of a fenced block, one per logical line (continuations joined)."""
    lines = re.sub(r"\\\n\s*", "", block).splitlines()
    return [normalize(line) for line in lines if line.strip() and not line.lstrip().startswith("#")]


@dataclass
class Seen:
    """What the run has done so far, for `once` and for the seeding checks."""

    ran: set[str] = field(default_factory=set)
    seeds: list[str] = field(default_factory=list)
