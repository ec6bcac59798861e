# shellcheck shell=bash
# Sourced by scripts/test and scripts/bench: makes a real PostgreSQL available and exports
# BILLSYNC_TEST_DATABASE_URL (a role that may CREATE DATABASE; tests make one per test).
#
# Order: (1) BILLSYNC_TEST_DATABASE_URL if already set; (2) a server answering on
# 127.0.0.1:5432; (3) a throwaway cluster from installed server binaries in a temp dir;
# (4) install Debian's postgresql package, then (3). Never skips silently: if none works it
# says why and exits 1. BILLSYNC_PG_FORCE_THROWAWAY=1 skips (1) and (2) (to test (3)).

pg_say() { echo "ensure-postgres: $*" >&2; }

# Cleanup on exit, shared by every sourced ensure-postgres*.sh: a second `trap ... EXIT` would
# replace the first, so each script registers a shell command here and one trap runs them all
# (each one even if another fails: `|| true` keeps `set -e` from cutting the list short).
PG_ON_EXIT=()
pg_on_exit() { # SHELL-COMMAND
  PG_ON_EXIT+=("$1")
  trap pg_run_on_exit EXIT
}
pg_run_on_exit() {
  local c
  for c in ${PG_ON_EXIT[@]+"${PG_ON_EXIT[@]}"}; do eval "$c" || true; done
}

# Stops the throwaway cluster in DIR/data (binaries in BIN) and removes DIR: registered with
# pg_on_exit right after DIR is made, so a failed start leaves nothing behind either.
pg_stop_and_remove() { # BIN DIR
  pg_as_owner "$1/pg_ctl" -D "$2/data" -m fast stop >/dev/null 2>&1
  rm -rf "$2"
}

pg_works() { # URL
  command -v psql >/dev/null 2>&1 || return 1
  psql "$1" -Atqc 'select 1' >/dev/null 2>&1
}

pg_bindir() {
  local d
  for d in "$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/x)")" /usr/lib/postgresql/*/bin; do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
      echo "$d"
      return 0
    fi
  done
  return 1
}

# A port in 55432-55532 (from $1 when given) that nothing listens on. These ports are inside
# Linux's ephemeral range: a client socket may still hold one, so a server's bind can fail on a
# port this calls free; starters try the next one then.
pg_free_port() {
  local p
  for p in $(seq "${1:-55432}" 55532); do
    if ! (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

# Starts the server of data directory $2 (binaries in $1, log $3) with the options $4 and a
# free port; prints the port. On a failed bind (the port held by a client socket after all),
# tries the next free port, a few times.
pg_start_on_free_port() {
  local bin=$1 data=$2 log=$3 opts=$4 port tries=0
  port=$(pg_free_port) || { pg_say "no free port in 55432-55532"; return 1; }
  until pg_as_owner "$bin/pg_ctl" -D "$data" -l "$log" -w -o "$opts -p $port" start >/dev/null; do
    tries=$((tries + 1))
    if [ "$tries" -ge 5 ] || ! grep -q "could not create" "$log"; then
      pg_say "pg_ctl start failed: $(tail -3 "$log")"
      return 1
    fi
    pg_say "port $port was taken after all ($(grep -m1 "could not create" "$log")); trying the next"
    : >"$log"
    port=$(pg_free_port $((port + 1))) || { pg_say "no free port in 55432-55532"; return 1; }
  done
  echo "$port"
}

# Runs a command as the postgres user when we are root (initdb and pg_ctl refuse root).
pg_as_owner() {
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/sh postgres
    if command -v runuser >/dev/null 2>&1; then
      runuser -u postgres -- "$@"
    else
      su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
    fi
  else
    "$@"
  fi
}

pg_start_throwaway() {
  local bin port
  bin=$(pg_bindir) || return 1
  PG_THROWAWAY_DIR=$(mktemp -d /tmp/billsync-pg.XXXXXX)
  pg_on_exit "pg_stop_and_remove $(printf %q "$bin") $(printf %q "$PG_THROWAWAY_DIR")"
  chmod 755 "$PG_THROWAWAY_DIR"
  [ "$(id -u)" = 0 ] && { id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/sh postgres; chown postgres "$PG_THROWAWAY_DIR"; }
  pg_as_owner "$bin/initdb" -D "$PG_THROWAWAY_DIR/data" -U postgres -A trust --no-sync >"$PG_THROWAWAY_DIR/initdb.log" 2>&1 || {
    pg_say "initdb failed: $(tail -3 "$PG_THROWAWAY_DIR/initdb.log")"
    return 1
  }
  port=$(pg_start_on_free_port "$bin" "$PG_THROWAWAY_DIR/data" "$PG_THROWAWAY_DIR/server.log" \
    "-h 127.0.0.1 -k $PG_THROWAWAY_DIR -c fsync=on -c max_connections=300") || return 1
  BILLSYNC_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
  pg_say "started a throwaway PostgreSQL ($bin) on 127.0.0.1:$port"
}

ensure_postgres() {
  if [ -z "${BILLSYNC_PG_FORCE_THROWAWAY:-}" ]; then
    if [ -n "${BILLSYNC_TEST_DATABASE_URL:-}" ]; then
      if ! command -v psql >/dev/null 2>&1 || pg_works "$BILLSYNC_TEST_DATABASE_URL"; then
        pg_say "using BILLSYNC_TEST_DATABASE_URL"
        return 0
      fi
      pg_say "BILLSYNC_TEST_DATABASE_URL is set but does not answer; looking further"
    fi
    if pg_works "postgres://postgres@127.0.0.1:5432/postgres"; then
      BILLSYNC_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres"
      pg_say "using the PostgreSQL on 127.0.0.1:5432"
      return 0
    fi
  fi
  if ! pg_bindir >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      pg_say "no PostgreSQL server binaries; installing Debian's postgresql package"
      apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null \
        || { pg_say "apt-get install postgresql failed"; }
    fi
  fi
  if pg_start_throwaway; then
    return 0
  fi
  echo "No PostgreSQL could be had: none answers on 127.0.0.1:5432, BILLSYNC_TEST_DATABASE_URL is unset or dead, and no server binaries could be found, installed or started (see messages above)." >&2
  exit 1
}

ensure_postgres
export BILLSYNC_TEST_DATABASE_URL
