# Shell helpers every bench script shares; sourced, never run. Loopback only.
#
#   bench_work NAME      a fresh $WORK (/tmp/usher-NAME.XXXXXX) and an empty PIDS; on exit every
#                        process in PIDS is stopped and reaped and $WORK removed (KEEP_WORK=1
#                        keeps it)
#   free_port            a free TCP port below the ephemeral range
#   wait_port HOST PORT  waits (up to WAIT_PORT_TRIES × 0.05 s, default 20 s) until something
#                        listens; else says so, shows the tail of $BENCH_LOG if set, and exits 1
#   median               the median of the numbers on stdin
#   ticks PID            the process's CPU time so far (utime + stime, in clock ticks)
#   bench_tenant PEM     usher config: tenant t1, its ES256 key k1 (public key file PEM) and the
#                        `jwt` policy on object `bench` that every benchmark token is signed for
#   bench_config TRIGGER_PORT CONTROL_PORT STATE_DIR LOG_LEVEL PEM
#                        a whole usher config on loopback: those ports and state directory,
#                        MistServer's API where nothing listens, and bench_tenant PEM
#   pgo_profdata         the path of rustup's llvm-profdata (it matches rustc's LLVM), adding
#                        the `llvm-tools` component when it is missing; exits 1 when it cannot
#   pgo_profile NAME RAW...
#                        merges the .profraw files into $TARGET/pgo/NAME-<hash>.profdata (named
#                        by its content, so cargo rebuilds whenever the profile changes) and
#                        prints that path; needs $TARGET and $WORK

free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 12000)) # below the ephemeral range
        ss -ltn | grep -q ":$p\b" || { echo "$p"; return; }
    done
}

wait_port() { # host port
    for _ in $(seq 1 "${WAIT_PORT_TRIES:-400}"); do
        (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "nothing listens on $1:$2" >&2
    [ -n "${BENCH_LOG:-}" ] && tail -5 "$BENCH_LOG" >&2 2>/dev/null
    exit 1
}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

bench_tenant() { # public-key-file
    cat <<EOT
[[tenants]]
id = "t1"
[[keys]]
kid = "k1"
tenant = "t1"
alg = "ES256"
public_key_file = "$1"
[[policies]]
object = "bench"
tenant = "t1"
type = "jwt"
EOT
}

bench_config() { # trigger-port control-port state-dir log-level public-key-file
    cat <<EOT
[trigger]
listen = "127.0.0.1:$1"
[control]
listen = "127.0.0.1:$2"
[state]
dir = "$3"
[mist]
api_url = "http://127.0.0.1:9/api2"
[log]
level = "$4"
$(bench_tenant "$5")
EOT
}

pgo_profdata() {
    local host tool
    host=$(rustc -vV | sed -n 's/^host: //p')
    tool="$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata"
    if [ ! -x "$tool" ]; then
        echo "adding rustup's llvm-tools (llvm-profdata)" >&2
        rustup component add llvm-tools >&2
    fi
    [ -x "$tool" ] || { echo "no llvm-profdata at $tool" >&2; exit 1; }
    echo "$tool"
}

pgo_profile() { # name raw-files...
    local name=$1 tool merged sum
    shift
    # Called as $(pgo_profile …), where `set -e` does not reach: every step says its failure.
    tool=$(pgo_profdata) || return 1
    merged=$WORK/$name.profdata
    "$tool" merge -o "$merged" "$@" || return 1
    sum=$(sha256sum "$merged" | cut -c1-16) || return 1
    mkdir -p "$TARGET/pgo" || return 1
    mv "$merged" "$TARGET/pgo/$name-$sum.profdata" || return 1
    echo "$TARGET/pgo/$name-$sum.profdata"
}

bench_work() { # name
    WORK=$(mktemp -d "/tmp/usher-$1.XXXXXX")
    PIDS=()
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

bench_cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
}
