#!/usr/bin/env bash
# psql against Shoal: DDL with every kind of constraint, then the describe
# meta-commands people actually type (\dt, \d table, \di, \dn, \l, \du) and a
# few queries with ON_ERROR_STOP. Connection from PGHOST/PGPORT/PGUSER/
# PGDATABASE (compat/run sets them). Prints `PASS name` / `FAIL name: reason`.
set -euo pipefail

failed=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; failed=1; }

# -X: no ~/.psqlrc; pager off so output is plain; ON_ERROR_STOP so a failing
# statement fails the command.
psql_() { psql -X -q -P pager=off -v ON_ERROR_STOP=1 "$@"; }

# first_error OUTPUT: the first ERROR line of psql's output (or its last line).
first_error() { grep -m1 -E 'ERROR|FATAL|error' <<<"$1" || tail -n 1 <<<"$1"; }

# sql NAME SQL: runs SQL as one script; passes if psql exits 0.
sql() {
  local out
  if out=$(psql_ -c "$2" 2>&1); then pass "$1"; else fail "$1" "$(first_error "$out") [sent: $2]"; fi
}

# query NAME SQL EXPECTED: tuples-only unaligned output must equal EXPECTED.
query() {
  local out
  if ! out=$(psql_ -tA -c "$2" 2>&1); then
    fail "$1" "$(first_error "$out") [sent: $2]"
  elif [ "$out" != "$3" ]; then
    fail "$1" "expected $(printf %q "$3"), got $(printf %q "$out") [sent: $2]"
  else
    pass "$1"
  fi
}

# describe NAME META-COMMAND PATTERN...: runs a meta-command, which must
# succeed, then checks each extended regex PATTERN matches a line of the
# output; each pattern is its own check, named `NAME shows /PATTERN/`.
describe() {
  local name=$1 cmd=$2 out
  shift 2
  if ! out=$(psql_ -c "$cmd" 2>&1); then
    fail "$name" "'$cmd' failed: $(first_error "$out")"
    return 0
  fi
  if [ -z "$out" ] || grep -q '^Did not find any' <<<"$out"; then
    fail "$name" "'$cmd' printed nothing useful: $(printf %q "$out")"
    return 0
  fi
  pass "$name"
  local pat
  for pat in "$@"; do
    if grep -Eq -- "$pat" <<<"$out"; then
      pass "$name shows /$pat/"
    else
      fail "$name shows /$pat/" "no line matches; '$cmd' printed:
$(sed 's/^/    | /' <<<"$out")"
    fi
  done
}

sql "psql create tables with PK, FK, unique, check, default, index" "
DROP TABLE IF EXISTS psql_orders;
DROP TABLE IF EXISTS psql_customers;
CREATE TABLE psql_customers (
  id integer PRIMARY KEY,
  email varchar(100) NOT NULL UNIQUE,
  name text NOT NULL DEFAULT 'anon',
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE psql_orders (
  id bigint PRIMARY KEY,
  customer_id integer NOT NULL REFERENCES psql_customers (id) ON DELETE CASCADE,
  amount numeric(10,2) NOT NULL CHECK (amount >= 0),
  status text NOT NULL DEFAULT 'new',
  note text
);
CREATE INDEX psql_orders_customer_idx ON psql_orders (customer_id);
"

describe 'psql \dt' '\dt' \
  '^ *public *\| *psql_customers *\| *table *\|' \
  '^ *public *\| *psql_orders *\| *table *\|'

describe 'psql \dt psql_*' '\dt psql_*' \
  '^ *public *\| *psql_customers *\| *table *\|' \
  '^ *public *\| *psql_orders *\| *table *\|'

describe 'psql \d psql_orders' '\d psql_orders' \
  'Table "public\.psql_orders"' \
  '^ *id *\| *bigint *\| *\| *not null *\|' \
  '^ *customer_id *\| *integer *\| *\| *not null *\|' \
  '^ *amount *\| *numeric\(10,2\) *\| *\| *not null *\|' \
  "^ *status *\| *text *\| *\| *not null *\| *'new'" \
  '^ *note *\| *text *\| *\| *\| *$' \
  '^Indexes:' \
  '"psql_orders_pkey" PRIMARY KEY, btree \(id\)' \
  '"psql_orders_customer_idx" btree \(customer_id\)' \
  '^Check constraints:' \
  'CHECK \(+amount >= ' \
  '^Foreign-key constraints:' \
  'FOREIGN KEY \(customer_id\) REFERENCES psql_customers\(id\) ON DELETE CASCADE'

describe 'psql \d psql_customers' '\d psql_customers' \
  'Table "public\.psql_customers"' \
  '^ *id *\| *integer *\| *\| *not null *\|' \
  '^ *email *\| *character varying\(100\) *\| *\| *not null *\|' \
  "^ *name *\| *text *\| *\| *not null *\| *'anon'" \
  '^ *created_at *\| *timestamp with time zone *\| *\| *not null *\| *now\(\)' \
  '"psql_customers_pkey" PRIMARY KEY, btree \(id\)' \
  '"psql_customers_email_key" UNIQUE CONSTRAINT, btree \(email\)' \
  '^Referenced by:' \
  'TABLE "psql_orders" CONSTRAINT "[a-z_]+" FOREIGN KEY \(customer_id\) REFERENCES psql_customers\(id\)'

describe 'psql \d' '\d' \
  '^ *public *\| *psql_customers *\| *table *\|' \
  '^ *public *\| *psql_orders *\| *table *\|'

describe 'psql \di psql_*' '\di psql_*' \
  '^ *public *\| *psql_orders_customer_idx *\| *index *\| *[a-z_]+ *\| *psql_orders' \
  '^ *public *\| *psql_orders_pkey *\| *index *\|'

describe 'psql \dn' '\dn' '^ *public *\|'
describe 'psql \l' '\l' '^ *[A-Za-z_][A-Za-z0-9_]* *\| *[A-Za-z_]+ *\| *UTF8'
describe 'psql \du' '\du' "^ *${PGUSER} *\|"

sql "psql insert rows" "
INSERT INTO psql_customers (id, email, name) VALUES (1, 'ann@example.com', 'Ann'), (2, 'bob@example.com', DEFAULT);
INSERT INTO psql_orders (id, customer_id, amount) VALUES (10, 1, 12.50), (11, 1, 7.25), (12, 2, 3);
UPDATE psql_orders SET status = 'paid' WHERE id = 11;
"

query "psql defaults were applied" \
  "SELECT name, status, created_at IS NOT NULL FROM psql_customers c JOIN psql_orders o ON o.customer_id = c.id WHERE o.id = 12" \
  "anon|new|t"

query "psql join with aggregate" \
  "SELECT c.name, count(*), sum(o.amount) FROM psql_customers c JOIN psql_orders o ON o.customer_id = c.id GROUP BY c.name ORDER BY c.name" \
  "Ann|2|19.75
anon|1|3.00"

# A script on stdin with a psql variable (interpolated client-side, quoted
# as a literal by :'var').
if out=$(psql_ -tA -v st=paid -f - 2>&1 <<'SQL'
SELECT id FROM psql_orders WHERE status = :'st' AND amount > 7 ORDER BY id;
SQL
); then
  if [ "$out" = 11 ]; then pass "psql script with a variable"; else fail "psql script with a variable" "expected 11, got $(printf %q "$out")"; fi
else
  fail "psql script with a variable" "$(first_error "$out")"
fi

# Constraint violations must fail the command with the PostgreSQL message.
expect_error() {
  local out
  if out=$(psql_ -c "$2" 2>&1); then
    fail "$1" "the statement succeeded [sent: $2]"
  elif grep -Eq -- "$3" <<<"$out"; then
    pass "$1"
  else
    fail "$1" "expected an error matching /$3/, got: $(first_error "$out") [sent: $2]"
  fi
}
expect_error "psql foreign key violation is reported" \
  "INSERT INTO psql_orders (id, customer_id, amount) VALUES (13, 99, 1)" \
  'ERROR: +insert or update on table "psql_orders" violates foreign key constraint'
expect_error "psql check violation is reported" \
  "INSERT INTO psql_orders (id, customer_id, amount) VALUES (14, 1, -1)" \
  'ERROR: +new row for relation "psql_orders" violates check constraint "psql_orders_amount_check"'
expect_error "psql unique violation is reported" \
  "INSERT INTO psql_customers (id, email) VALUES (3, 'ann@example.com')" \
  'ERROR: +duplicate key value violates unique constraint "psql_customers_email_key"'

# ON_ERROR_STOP in a multi-statement script inside a transaction: nothing of
# the failed transaction may remain.
out=$(psql_ -1 -c "INSERT INTO psql_customers (id, email) VALUES (5, 'eve@example.com')" \
  -c "INSERT INTO psql_customers (id, email) VALUES (6, 'ann@example.com')" 2>&1) && rc=0 || rc=$?
if [ "$rc" = 0 ]; then
  fail "psql -1 (single transaction) rolls back on error" "the script succeeded"
else
  query "psql -1 (single transaction) rolls back on error" \
    "SELECT count(*) FROM psql_customers WHERE id IN (5, 6)" "0"
fi

query "psql ON DELETE CASCADE" \
  "DELETE FROM psql_customers WHERE id = 1; SELECT count(*) FROM psql_orders" "1"

sql "psql drop tables" "DROP TABLE psql_orders; DROP TABLE psql_customers;"

exit "$failed"
