#!/usr/bin/env bash
# The flywheel end to end, across real processes on loopback: contribute → curate → train → serve → attribute →
# reward. `make demo` builds and runs it; it prints a report and leaves no process running.
#
# Settings (environment): DEMO_BIN (the built executables, default .build/release), DEMO_WORK (its data and logs,
# default demo/.work, wiped first), DEMO_STEPS (training steps, default 150), DEMO_METHOD (attribution method,
# default gradcos), DEMO_EVALUATE=1 (also measure the attribution's LDS with retrains fanned out over the engines).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${DEMO_BIN:-$ROOT/.build/release}
WORK=${DEMO_WORK:-$ROOT/demo/.work}
STEPS=${DEMO_STEPS:-150}
METHOD=${DEMO_METHOD:-gradcos}
EVALUATE=${DEMO_EVALUATE:-0}
SAMPLES=$ROOT/demo/data
MODEL=$ROOT/models/tributary-base
DATA=$WORK/data
LOGS=$WORK/logs
started=$(date +%s)

for tool in tributary-engine tributary-coordinator tributary; do
    [[ -x $BIN/$tool ]] || { echo "demo: $BIN/$tool is missing: run \`make demo\` (it builds them)" >&2; exit 2; }
done
rm -rf "$WORK"
mkdir -p "$DATA" "$LOGS"

# ---------------------------------------------------------------- processes

pids=()
stop_all() {
    local pid
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    pids=()
}
trap stop_all EXIT
trap 'exit 130' INT TERM

# start NAME COMMAND...: runs it in the background, remembered for stop_all. Every server here is started
# with --port 0 --json: it writes its {"host","port"} line first, which port_of waits for.
start() {
    local name=$1
    shift
    "$@" >"$LOGS/$name.out" 2>"$LOGS/$name.log" &
    pids+=($!)
}

# port_of NAME: the port NAME's server listens on, once it has said so.
port_of() {
    local name=$1 pid=${pids[-1]} waited=0
    until [[ -s $LOGS/$name.out ]]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "demo: $name exited at start; its log:" >&2
            cat "$LOGS/$name.log" >&2
            exit 1
        fi
        (( waited++ < 600 )) || { echo "demo: $name did not start within 60 s" >&2; exit 1; }
        sleep 0.1
    done
    field port <"$LOGS/$name.out"
}

# field KEY [KEY...] < JSON: one value from a JSON document on standard input (nested keys in order).
field() {
    python3 -c 'import json, sys
value = json.loads(sys.stdin.readline())
for key in sys.argv[1:]:
    value = value[int(key)] if isinstance(value, list) else value[key]
print(value)' "$@"
}

heading() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
say() { printf '%s\n' "$*"; }

# as CONTRIBUTOR tributary ARGS...: the client CLI with that contributor's token.
declare -A TOKEN
as() {
    local who=$1
    shift
    TRIBUTARY_TOKEN=${TOKEN[$who]} "$BIN/tributary" "$@"
}

# ---------------------------------------------------------------- 1. the network

heading "1. A coordinator and two engines on loopback"
# Made through the data directory: an operator (credits accounts with `tributary ledger deposit`, drains any
# engine) and the engines' credential (role engine: the coordinator registers engines only with such a token, and
# binds each engine's name to it).
operator=$("$BIN/tributary-engine" contributor add --data "$DATA" --name operator --role operator --json)
TOKEN[operator]=$(field token <<<"$operator")
engines=$("$BIN/tributary-engine" contributor add --data "$DATA" --name engines --role engine --json)
TOKEN[engines]=$(field token <<<"$engines")
start coordinator "$BIN/tributary-coordinator" --port 0 --json --data "$DATA" --heartbeat-seconds 1
coordinator_port=$(port_of coordinator)
export TRIBUTARY_COORDINATOR=127.0.0.1:$coordinator_port
for engine in engine-a engine-b; do
    TRIBUTARY_TOKEN=${TOKEN[engines]} start "$engine" "$BIN/tributary-engine" serve --port 0 --json \
        --data "$DATA" --model "$MODEL" --coordinator "$TRIBUTARY_COORDINATOR" --name "$engine"
    port=$(port_of "$engine")
    [[ $engine == engine-a ]] && export TRIBUTARY_SERVER=127.0.0.1:$port
    say "$engine serving on 127.0.0.1:$port, registered with the coordinator on $TRIBUTARY_COORDINATOR"
done

# ---------------------------------------------------------------- 2. contributors and datanets

heading "2. Contributors sign up and fill datanets, each in their own domain"
declare -A NAME ID
for who in alice bob carol mallory dave erin; do
    signed=$("$BIN/tributary" signup --name "$who" --json)
    TOKEN[$who]=$(field token <<<"$signed")
    ID[$who]=$(field contributor <<<"$signed")
    NAME[${ID[$who]}]=$who
done
say "signed up: alice, bob, carol (contributors), mallory (careless), dave (builds an adapter), erin (a user)"
say "contributor ids (the CLI shows these): $(for who in alice bob carol mallory dave erin; do printf '%s=%s ' "$who" "${ID[$who]}"; done)"

declare -A DATANET OWNER
create_datanet() { # owner name domain summary
    DATANET[$2]=$(as "$1" datanet create "$2" --summary "$4" --tag "$3" --license CC-BY-4.0 --json | field id)
    OWNER[$2]=$1
    say "$1 created datanet ${DATANET[$2]} \"$2\""
}
create_datanet alice recipes recipes "Home recipes: ingredients and method"
create_datanet bob sea-forecasts forecasts "Shipping forecasts for the sea areas"
create_datanet carol astronomy-logs astronomy "Observing-session notes"

as alice datanet contribute "${DATANET[recipes]}" --file "$SAMPLES/recipes.jsonl"
as bob datanet contribute "${DATANET[sea-forecasts]}" --file "$SAMPLES/forecasts.jsonl"
as carol datanet contribute "${DATANET[astronomy-logs]}" --file "$SAMPLES/astronomy.jsonl"

heading "3. mallory submits damaged recipes, and copies of carol's notes"
as mallory datanet contribute "${DATANET[recipes]}" --file "$SAMPLES/shuffled-recipes.jsonl"
head -n 3 "$SAMPLES/astronomy.jsonl" >"$WORK/copied.jsonl"
copies_refused=true
as mallory datanet contribute "${DATANET[astronomy-logs]}" --file "$WORK/copied.jsonl" && copies_refused=false
say "(a datanet holds each content once)"

heading "4. Owners review and publish"
for name in recipes sea-forecasts astronomy-logs; do
    as "${OWNER[$name]}" datanet approve --all-pending "${DATANET[$name]}" | tail -n 1
    as "${OWNER[$name]}" datanet publish "${DATANET[$name]}"
done
# The operator keeps held-out records of every domain, for measuring what training records do to quality.
create_datanet operator held-out all "Held-out records of every domain, for curation"
as operator datanet contribute "${DATANET[held-out]}" --file "$SAMPLES/held-out.jsonl"
as operator datanet approve --all-pending "${DATANET[held-out]}" | tail -n 1
as operator datanet publish "${DATANET[held-out]}"

# ---------------------------------------------------------------- 3. training through the coordinator

heading "5. dave trains an adapter on the three datanets, through the coordinator"
as operator engine list
job=$(as dave train submit --adapter-name flywheel \
    --version "${DATANET[recipes]}:1" --version "${DATANET[sea-forecasts]}:1" --version "${DATANET[astronomy-logs]}:1" \
    --rank 8 --alpha 16 --learning-rate 3e-3 --steps "$STEPS" --batch-size 8 --sequence-length 256 \
    --checkpoint-every 50 --seed 1 --json | field id)
as dave train watch "$job"
adapter=$(as dave train status "$job" --json | field adapter)
say "adapter $adapter trained (job $job)"

heading "6. Its gradient index, built on an engine"
index_job=$(as dave index submit --adapter "$adapter" --method "$METHOD" --json | field id)
as dave index watch "$index_job"

# ---------------------------------------------------------------- 4. serving, attribution, rewards

heading "7. erin streams inference, one prompt per domain, and pays for each"
# Fees are paid from an account: the operator credits erin's first (sent twice with one key: credited once).
for attempt in 1 2; do
    as operator ledger deposit --contributor "${ID[erin]}" --amount 10000000 --memo "erin's prepaid credit" \
        --idempotency-key demo-erin-credit
done
as operator adapter load "$adapter"
declare -A PROMPT=(
    [recipes]="Braised beef shin with garlic"
    [forecasts]="The shipping forecast issued by the Met Office at 0015 on Monday."
    [astronomy]="Session notes for the night of 2 May."
)
declare -A EXPECTED=([recipes]=alice [forecasts]=bob [astronomy]=carol)
declare -A LEADER
for domain in recipes forecasts astronomy; do
    say ""
    say "--- $domain: \"${PROMPT[$domain]}\""
    as erin infer --adapter "$adapter" --prompt "${PROMPT[$domain]}" --max-tokens 80 --method "$METHOD" --top 3 \
        --fee 1000000 | tee "$WORK/infer-$domain.txt"
    inference=$(grep -o 'inference [0-9]*' "$WORK/infer-$domain.txt" | head -n 1 | cut -d' ' -f2)
    leader=$(as erin attribute --inference "$inference" --json | python3 -c '
import json, sys
print(max(json.load(sys.stdin)["contributors"], key=lambda c: c["share"])["contributor"])')
    LEADER[$domain]=${NAME[$leader]}
done

heading "8. Curation: which contributions hurt the held-out records?"
as dave curate --adapter "$adapter" --evaluation "${DATANET[held-out]}:1" --method datainf --max-flags 12 --points 10 --apply

heading "9. After curation, mallory's penalty points cut their payout"
as erin infer --adapter "$adapter" --prompt "${PROMPT[forecasts]}" --max-tokens 80 --method "$METHOD" --top 0 \
    --fee 1000000 | sed -n '/^reward split/,$p'

heading "10. The ledger: balances, and the hash chain verified"
"$BIN/tributary" ledger balances
"$BIN/tributary" ledger verify

# About three minutes more on two cores, so only when asked for (DEMO_EVALUATE=1).
if [[ $EVALUATE == 1 ]]; then
    heading "11. How good is the attribution? An evaluation fans its retrains out over both engines"
    evaluation=$(as dave evaluate submit --adapter "$adapter" --version "${DATANET[held-out]}:1" --json | field id)
    as dave evaluate watch "$evaluation" | tail -n 1
    # The coordinator queues an evaluation's 8 retrains just before the job that gathers them.
    retrain_engines=$(for id in $(seq $((evaluation - 8)) $((evaluation - 1))); do
        as dave train status "$id" --json | field engine
    done | sort | uniq -c | awk '{ printf "%s%d on %s", (NR > 1 ? ", " : ""), $1, $2 }')
    say "its 8 subset retrains ran: $retrain_engines"
fi

# ---------------------------------------------------------------- report

heading "Report"
failures=0
check() { # description, whether it holds
    if [[ $2 == true ]]; then printf '  ok     %s\n' "$1"; else printf '  WRONG  %s\n' "$1"; failures=$((failures + 1)); fi
}
for domain in recipes forecasts astronomy; do
    check "the $domain output is led by ${LEADER[$domain]} (expected ${EXPECTED[$domain]})" \
        "$([[ ${LEADER[$domain]} == "${EXPECTED[$domain]}" ]] && echo true)"
done
flagged=$(as dave curate --adapter "$adapter" --evaluation "${DATANET[held-out]}:1" --method datainf --max-flags 12 --json |
    python3 -c 'import json, sys; print(" ".join(str(f["contributor"]) for f in json.load(sys.stdin)["flagged"]))')
check "curation flags mallory's records, and only theirs" \
    "$([[ -n $flagged && -z $(tr ' ' '\n' <<<"$flagged" | grep -vx "${ID[mallory]}") ]] && echo true)"
check "mallory's copies of carol's notes were refused" "$copies_refused"
if [[ $EVALUATE == 1 ]]; then
    check "the evaluation's retrains ran on both engines" \
        "$([[ $retrain_engines == *engine-a* && $retrain_engines == *engine-b* ]] && echo true)"
fi
check "the ledger verifies" "$("$BIN/tributary" ledger verify --json | field broken | grep -qx None && echo true)"
verification=$("$BIN/tributary" ledger verify --json)
deposits=$(field deposits <<<"$verification")
check "money is conserved: the balances sum to the deposits ($deposits micro-units, erin's credit once)" \
    "$([[ $deposits == 10000000 && $(field balances <<<"$verification") == "$deposits" ]] && echo true)"
say ""
say "balances (micro-units):"
"$BIN/tributary" ledger balances --json | python3 -c '
import json, sys
names = dict(arg.split("=") for arg in sys.argv[1:])
for balance in json.load(sys.stdin):
    who = "protocol" if balance.get("contributor") is None else names.get(str(balance["contributor"]), balance["contributor"])
    amount = balance["amount"]
    print(f"  {who:<10} {amount:>10}")' $(for id in "${!NAME[@]}"; do printf '%s=%s ' "$id" "${NAME[$id]}"; done)
stop_all
say "all processes stopped; logs in $LOGS; $(( $(date +%s) - started )) s"
exit $(( failures > 0 ))
