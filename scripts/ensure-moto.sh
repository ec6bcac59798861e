# shellcheck shell=bash
# Sourced by scripts/test after scripts/ensure-postgres.sh (whose pg_on_exit it uses when
# present): starts moto's server on 127.0.0.1, which serves SQS for the SQS intake tests
# (tests/it/sqs_intake.rs) and S3, with Object Lock, for the raw archive's (tests/it/archive.rs),
# and exports
#   BILLSYNC_TEST_SQS_ENDPOINT  http://127.0.0.1:PORT
#   AWS_ENDPOINT_URL            the same, so billsync's standard AWS loader reaches it
#   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION   dummy values (moto accepts any)
#
# moto[server] (MOTO_VERSION) is installed into the Python venv of the tests, target/py-venv,
# made here when missing. The server is stopped when the sourcing shell exits. Never skips
# silently: if moto cannot be installed or does not answer, it says why and exits 1.

MOTO_VERSION=5.2.5

moto_say() { echo "ensure-moto: $*" >&2; }

moto_answers() { # PORT
  (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

moto_free_port() {
  local p
  for p in $(seq 55600 55700); do
    if ! moto_answers "$p"; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

ensure_moto() {
  local venv=target/py-venv port i
  if ! "$venv/bin/python" -c "import moto.server, moto.sqs" >/dev/null 2>&1; then
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv" || { moto_say "cannot make $venv"; exit 1; }
    moto_say "installing moto[server]==$MOTO_VERSION into $venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -c scripts/python-constraints.txt \
      "moto[server]==$MOTO_VERSION" \
      || { moto_say "pip install moto[server]==$MOTO_VERSION failed"; exit 1; }
  fi
  port=$(moto_free_port) || { moto_say "no free port in 55600-55700"; exit 1; }
  MOTO_LOG=$(mktemp /tmp/billsync-moto.XXXXXX)
  "$venv/bin/python" -m moto.server -H 127.0.0.1 -p "$port" >"$MOTO_LOG" 2>&1 &
  MOTO_PID=$!
  if declare -F pg_on_exit >/dev/null; then
    pg_on_exit "kill $MOTO_PID 2>/dev/null; rm -f $(printf %q "$MOTO_LOG")"
  else
    trap 'kill $MOTO_PID 2>/dev/null; rm -f "$MOTO_LOG"' EXIT
  fi
  for i in $(seq 1 100); do
    if moto_answers "$port"; then
      break
    fi
    if ! kill -0 "$MOTO_PID" 2>/dev/null || [ "$i" = 100 ]; then
      moto_say "moto's server did not start: $(tail -5 "$MOTO_LOG")"
      exit 1
    fi
    sleep 0.1
  done
  export BILLSYNC_TEST_SQS_ENDPOINT="http://127.0.0.1:$port"
  export AWS_ENDPOINT_URL="$BILLSYNC_TEST_SQS_ENDPOINT"
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
  moto_say "moto $MOTO_VERSION serves SQS and S3 on $BILLSYNC_TEST_SQS_ENDPOINT (pid $MOTO_PID)"
}

ensure_moto
