# shellcheck shell=bash
# Sourced by scripts/test right after scripts/ensure-postgres.sh (whose pg_* helpers it uses):
# makes a PostgreSQL that accepts TCP connections only over TLS (as Aurora/RDS do with
# rds.force_ssl=1) available, and exports
#   BILLSYNC_TEST_DATABASE_URL_TLS  postgres://postgres@localhost:PORT/postgres?sslmode=verify-full&sslrootcert=CA
#   BILLSYNC_TEST_PG_TLS_CA         CA, the test CA that signed the server's certificate
#
# Order: (1) BILLSYNC_TEST_DATABASE_URL_TLS if already set and answering (unless
# BILLSYNC_PG_FORCE_THROWAWAY=1); (2) a throwaway cluster in a temp dir with a test CA and a
# server certificate for localhost made here with openssl. Never skips silently: if neither
# works it says why and exits 1.

# Writes DIR/ca.pem (test CA), DIR/server.pem and DIR/server.key (localhost, signed by the CA).
pg_tls_make_certs() { # DIR
  local d=$1
  cat >"$d/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
  local key=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
  openssl req -x509 -config "$d/openssl.cnf" -extensions ca "${key[@]}" -keyout "$d/ca.key" \
    -out "$d/ca.pem" -days 7 -subj "/CN=billsync test CA" &&
    openssl req -new -config "$d/openssl.cnf" "${key[@]}" -keyout "$d/server.key" \
      -out "$d/server.csr" -subj "/CN=localhost" &&
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -set_serial "0x$(openssl rand -hex 8)" \
      -days 7 -extfile "$d/openssl.cnf" -extensions server -out "$d/server.pem"
}

pg_tls_start_throwaway() {
  local bin port dir psql addrs listen=127.0.0.1 out
  command -v openssl >/dev/null 2>&1 || { pg_say "no openssl to make the test certificates"; return 1; }
  bin=$(pg_bindir) || { pg_say "no PostgreSQL server binaries"; return 1; }
  psql=$bin/psql
  [ -x "$psql" ] || psql=psql
  # The certificate names localhost; the URL uses it, so it must resolve to where we listen.
  addrs=$(getent ahosts localhost | awk '{print $1}' | sort -u)
  grep -qx 127.0.0.1 <<<"$addrs" || {
    pg_say "localhost does not resolve to 127.0.0.1 (it gives: ${addrs:-nothing}); add '127.0.0.1 localhost' to /etc/hosts"
    return 1
  }
  if grep -qx ::1 <<<"$addrs"; then listen=127.0.0.1,::1; fi # clients may try ::1 first

  dir=$(mktemp -d /tmp/billsync-pgtls.XXXXXX)
  pg_on_exit "pg_stop_and_remove $(printf %q "$bin") $(printf %q "$dir")"
  chmod 755 "$dir"
  pg_tls_make_certs "$dir" >"$dir/openssl.log" 2>&1 || {
    pg_say "openssl could not make the test certificates: $(tail -3 "$dir/openssl.log")"
    return 1
  }
  # Postgres refuses a key file that is not its own with mode 0600.
  chmod 600 "$dir/server.key"
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/sh postgres
    chown postgres "$dir" "$dir/server.key"
  fi

  pg_as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust --no-sync >"$dir/initdb.log" 2>&1 || {
    pg_say "initdb failed: $(tail -3 "$dir/initdb.log")"
    return 1
  }
  # TCP only over TLS; plain TCP is rejected. The Unix socket stays open (for pg_ctl).
  cat >"$dir/data/pg_hba.conf" <<'EOF'
local     all all              trust
hostssl   all all 127.0.0.1/32 trust
hostssl   all all ::1/128      trust
hostnossl all all 0.0.0.0/0    reject
hostnossl all all ::/0         reject
EOF
  port=$(pg_start_on_free_port "$bin" "$dir/data" "$dir/server.log" \
    "-h $listen -k $dir -c ssl=on -c ssl_cert_file=$dir/server.pem -c ssl_key_file=$dir/server.key -c max_connections=200 -c fsync=on") ||
    return 1

  BILLSYNC_TEST_DATABASE_URL_TLS="postgres://postgres@localhost:$port/postgres?sslmode=verify-full&sslrootcert=$dir/ca.pem"
  BILLSYNC_TEST_PG_TLS_CA=$dir/ca.pem
  # Check both halves: a verified TLS connection works, a plain one is refused.
  out=$("$psql" "$BILLSYNC_TEST_DATABASE_URL_TLS" -Atqc 'select ssl from pg_stat_ssl where pid = pg_backend_pid()' 2>&1)
  [ "$out" = t ] || {
    pg_say "a verify-full TLS connection to localhost:$port did not work: $out"
    return 1
  }
  if out=$("$psql" "postgres://postgres@localhost:$port/postgres?sslmode=disable" -Atqc 'select 1' 2>&1); then
    pg_say "a plain (sslmode=disable) connection to localhost:$port was ACCEPTED; the server must refuse it"
    return 1
  fi
  pg_say "plain connection refused as expected: $(grep -m1 FATAL <<<"$out" || echo "$out")"
  pg_say "started a TLS-only PostgreSQL ($bin) on localhost:$port (listening on $listen), CA $dir/ca.pem"
}

ensure_postgres_tls() {
  if [ -z "${BILLSYNC_PG_FORCE_THROWAWAY:-}" ] && [ -n "${BILLSYNC_TEST_DATABASE_URL_TLS:-}" ]; then
    if pg_works "$BILLSYNC_TEST_DATABASE_URL_TLS"; then
      pg_say "using BILLSYNC_TEST_DATABASE_URL_TLS"
      # The CA, if not given, from the URL's sslrootcert (empty if the URL has none).
      BILLSYNC_TEST_PG_TLS_CA=${BILLSYNC_TEST_PG_TLS_CA:-$(sed -n 's/.*[?&]sslrootcert=\([^&]*\).*/\1/p' <<<"$BILLSYNC_TEST_DATABASE_URL_TLS")}
      return 0
    fi
    pg_say "BILLSYNC_TEST_DATABASE_URL_TLS is set but does not answer; starting a throwaway TLS server"
  fi
  if ! pg_bindir >/dev/null || ! command -v openssl >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      pg_say "no PostgreSQL server binaries or no openssl; installing Debian's postgresql and openssl packages"
      if ! { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql openssl >/dev/null; }; then
        pg_say "apt-get install postgresql openssl failed"
      fi
    fi
  fi
  if pg_tls_start_throwaway; then
    return 0
  fi
  echo "No TLS-only PostgreSQL could be had: BILLSYNC_TEST_DATABASE_URL_TLS is unset or dead, and no throwaway server with a test CA could be made, started or verified (see messages above)." >&2
  exit 1
}

ensure_postgres_tls
export BILLSYNC_TEST_DATABASE_URL_TLS BILLSYNC_TEST_PG_TLS_CA
