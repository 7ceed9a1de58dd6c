"""psycopg 3 against Shoal.

Every check opens its own connection (from PGHOST/PGPORT/PGUSER/PGDATABASE,
which compat/run sets) so one failure does not cascade into the next, and
prints `PASS name` or `FAIL name: reason`. A failing statement is reported
with the SQL that was sent and the server's SQLSTATE and message.

Connections are in psycopg's default mode (autocommit off): every statement
runs inside a transaction that psycopg opens with BEGIN, as in most
applications.
"""

import datetime as dt
import decimal
import os
import sys
import traceback
import uuid

import psycopg
from psycopg import errors, sql
from psycopg.types.json import Json, Jsonb

FAILED = []


def connect(**kwargs):
    return psycopg.connect(
        host=os.environ.get("PGHOST", "127.0.0.1"),
        port=os.environ["PGPORT"],
        user=os.environ.get("PGUSER", "shoal"),
        dbname=os.environ.get("PGDATABASE", "shoal"),
        connect_timeout=10,
        **kwargs,
    )


class Sent(Exception):
    """A statement failed: carries what was sent and what came back."""


def run(cur, query, params=None, **kwargs):
    """cur.execute(), adding the statement to any error it raises."""
    try:
        return cur.execute(query, params, **kwargs)
    except psycopg.Error as e:
        raise Sent(f"{describe(e)} [sent: {text_of(query)} params={params!r}]") from e


def text_of(query):
    return query.as_string(None) if isinstance(query, sql.Composable) else " ".join(str(query).split())


def describe(e):
    if isinstance(e, psycopg.Error) and e.sqlstate:
        return f"{type(e).__name__} {e.sqlstate}: {e.diag.message_primary}"
    return f"{type(e).__name__}: {' '.join(str(e).split())}"


def check(name):
    def wrap(fn):
        try:
            fn()
        except Sent as e:
            print(f"FAIL psycopg {name}: {e}")
            FAILED.append(name)
        except AssertionError as e:
            frames = [f for f in traceback.extract_tb(e.__traceback__) if f.name != "eq"]
            print(f"FAIL psycopg {name}: assertion at line {frames[-1].lineno}: {e or frames[-1].line}")
            FAILED.append(name)
        except Exception as e:  # noqa: BLE001 — any error is a failed check
            # Name the line of the check that raised (conn.rollback() and
            # friends send statements of their own), and an earlier error
            # this one masks.
            frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == __file__]
            where = f" (raised by `{frames[-1].line}`, line {frames[-1].lineno})" if frames else ""
            earlier = f"; while handling {describe(e.__context__)}" if isinstance(e.__context__, psycopg.Error) else ""
            print(f"FAIL psycopg {name}: {describe(e)}{where}{earlier}")
            FAILED.append(name)
        else:
            print(f"PASS psycopg {name}")
        return fn

    return wrap


def eq(got, want, what=""):
    assert got == want, f"{what} expected {want!r}, got {got!r}"


# --- setup -------------------------------------------------------------------


@check("connect, server parameters, SELECT 1")
def _():
    with connect() as conn:
        eq(conn.autocommit, False, "autocommit")
        eq(conn.execute("SELECT 1").fetchone(), (1,))
        eq(conn.info.transaction_status, psycopg.pq.TransactionStatus.INTRANS, "transaction status")
        # psycopg relies on these being reported at startup.
        eq(conn.info.parameter_status("client_encoding"), "UTF8", "client_encoding")
        assert conn.info.server_version >= 90000, f"server_version {conn.info.server_version}"
        assert conn.info.parameter_status("standard_conforming_strings") == "on"


@check("ParameterStatus follows SET, RESET and each write's causal token")
def _():
    with connect(autocommit=True) as conn:
        conn.execute("SET application_name = 'pg3-status'")
        eq(conn.info.parameter_status("application_name"), "pg3-status", "after SET")
        conn.execute("RESET application_name")
        eq(conn.info.parameter_status("application_name"), "", "after RESET")
        conn.execute("CREATE TABLE IF NOT EXISTS pg3_tokens (id INT PRIMARY KEY)")
        tokens = []
        for i in (1, 2):
            conn.execute(f"INSERT INTO pg3_tokens VALUES ({i}) ON CONFLICT DO NOTHING")
            token = conn.info.parameter_status("shoal.causal_token")
            eq(token, conn.execute("SHOW shoal.causal_token").fetchone()[0], "token reported")
            tokens.append(token)
        assert tokens[0] != tokens[1], f"a second write reports a new token: {tokens}"
        conn.execute("DROP TABLE pg3_tokens")


@check("DDL in a transaction")
def _():
    with connect() as conn:
        cur = conn.cursor()
        run(cur, "DROP TABLE IF EXISTS pg3_items")
        run(cur, "DROP TABLE IF EXISTS pg3_types")
        run(
            cur,
            """CREATE TABLE pg3_items (
                 id integer PRIMARY KEY,
                 name text NOT NULL UNIQUE,
                 qty integer NOT NULL DEFAULT 0
               )""",
        )
        run(
            cur,
            """CREATE TABLE pg3_types (
                 id integer PRIMARY KEY,
                 i int, b bigint, t text, ok boolean, f double precision,
                 n numeric(10,2), d date, ts timestamp, tstz timestamptz,
                 u uuid, raw bytea, doc jsonb, js json
               )""",
        )
        conn.commit()
        # DDL is visible to a second connection only once committed.
        with connect() as other:
            eq(run(other.cursor(), "SELECT count(*) FROM pg3_items").fetchone(), (0,))


# --- parameters --------------------------------------------------------------


@check("parametrized insert and select (%s, server-side binding)")
def _():
    with connect() as conn:
        cur = conn.cursor()
        run(cur, "INSERT INTO pg3_items (id, name, qty) VALUES (%s, %s, %s)", (1, "apple", 5))
        run(cur, "INSERT INTO pg3_items (id, name) VALUES (%(id)s, %(name)s)", {"id": 2, "name": "pear"})
        run(cur, "SELECT name, qty FROM pg3_items WHERE id = %s", (1,))
        eq(cur.fetchone(), ("apple", 5))
        run(cur, "SELECT id, qty FROM pg3_items WHERE name = %s", ("pear",))
        eq(cur.fetchall(), [(2, 0)])
        run(cur, "SELECT %s::text || %s::text, %s + 1", ("a", "b", 41))
        eq(cur.fetchone(), ("ab", 42))
        conn.commit()


@check("prepared statements (prepare=True, reused)")
def _():
    with connect() as conn:
        cur = conn.cursor()
        for i in range(3):
            run(cur, "SELECT name FROM pg3_items WHERE id = %s", (1 + i % 2,), prepare=True)
            eq(cur.fetchone(), (("apple", "pear")[i % 2],), f"round {i}")
        run(cur, "UPDATE pg3_items SET qty = qty + %s WHERE id = %s", (1, 1), prepare=True)
        run(cur, "UPDATE pg3_items SET qty = qty + %s WHERE id = %s", (1, 1), prepare=True)
        eq(cur.rowcount, 1, "rowcount")
        run(cur, "SELECT qty FROM pg3_items WHERE id = 1")
        eq(cur.fetchone(), (7,))
        conn.rollback()


@check("client-side binding (ClientCursor)")
def _():
    with connect() as conn:
        cur = psycopg.ClientCursor(conn)
        run(cur, "SELECT %s, %s, %s", ("it's", 3, None))
        eq(cur.fetchone(), ("it's", 3, None))


@check("executemany (pipelined) and RETURNING")
def _():
    with connect() as conn:
        cur = conn.cursor()
        rows = [(10 + i, f"item{i}", i) for i in range(20)]
        try:
            cur.executemany("INSERT INTO pg3_items (id, name, qty) VALUES (%s, %s, %s)", rows)
        except psycopg.Error as e:
            raise Sent(f"{describe(e)} [sent: executemany INSERT INTO pg3_items ... x20]") from e
        eq(cur.rowcount, 20, "rowcount")
        run(cur, "SELECT count(*), sum(qty) FROM pg3_items WHERE id >= 10")
        eq(cur.fetchone(), (20, sum(range(20))))
        try:
            cur.executemany(
                "UPDATE pg3_items SET qty = qty * 2 WHERE id = %s RETURNING id, qty",
                [(10,), (11,)],
                returning=True,
            )
        except psycopg.Error as e:
            raise Sent(f"{describe(e)} [sent: executemany UPDATE ... RETURNING]") from e
        got = []
        while True:
            got.append(cur.fetchone())
            if not cur.nextset():
                break
        eq(got, [(10, 0), (11, 2)], "RETURNING rows")
        conn.commit()


# --- types -------------------------------------------------------------------

TZ = dt.timezone(dt.timedelta(hours=2))
VALUES = {
    "i": 2147483647,
    "b": 9007199254740993,  # 2**53 + 1: must not go through a double
    "t": "héllo, 'world' \\ \"ok\" 🐟",
    "ok": True,
    "f": 3.25,
    "n": decimal.Decimal("12345678.90"),
    "d": dt.date(2024, 2, 29),
    "ts": dt.datetime(2024, 2, 29, 13, 14, 15, 123456),
    "tstz": dt.datetime(2024, 2, 29, 13, 14, 15, 500000, tzinfo=TZ),
    "u": uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    "raw": bytes(range(256)),
    "doc": {"a": 1, "b": [True, None, "x"], "c": {"d": 1.5}},
    "js": {"k": "v"},
}
COLS = list(VALUES)


def insert_values(cur, row_id, **execute_kwargs):
    params = dict(VALUES, id=row_id, doc=Jsonb(VALUES["doc"]), js=Json(VALUES["js"]))
    run(
        cur,
        f"INSERT INTO pg3_types (id, {', '.join(COLS)}) VALUES (%(id)s, {', '.join(f'%({c})s' for c in COLS)})",
        params,
        **execute_kwargs,
    )


def check_row(row):
    got = dict(zip(COLS, row))
    for col in COLS:
        want = VALUES[col]
        eq(type(got[col]), type(want), f"python type of {col}:")
        eq(got[col], want, f"value of {col}:")  # aware datetimes compare as instants
    assert got["tstz"].tzinfo is not None, "timestamptz came back naive"
    assert got["ts"].tzinfo is None, "timestamp came back aware"


@check("types round-trip (text results)")
def _():
    with connect() as conn:
        cur = conn.cursor()
        run(cur, "DELETE FROM pg3_types")
        insert_values(cur, 1)
        run(cur, f"SELECT {', '.join(COLS)} FROM pg3_types WHERE id = %s", (1,))
        check_row(cur.fetchone())
        conn.commit()


@check("types round-trip (binary parameters and results)")
def _():
    with connect() as conn:
        cur = conn.cursor(binary=True)
        params = dict(VALUES, id=2, doc=Jsonb(VALUES["doc"]), js=Json(VALUES["js"]))
        run(
            cur,
            f"INSERT INTO pg3_types (id, {', '.join(COLS)}) VALUES (%(id)b, {', '.join(f'%({c})b' for c in COLS)})",
            params,
        )
        run(cur, f"SELECT {', '.join(COLS)} FROM pg3_types WHERE id = %b", (2,))
        check_row(cur.fetchone())
        conn.rollback()


@check("NULLs of every type")
def _():
    with connect() as conn:
        cur = conn.cursor()
        run(cur, "INSERT INTO pg3_types (id) VALUES (%s)", (3,))
        run(cur, f"SELECT {', '.join(COLS)} FROM pg3_types WHERE id = %s", (3,))
        eq(cur.fetchone(), (None,) * len(COLS))
        conn.rollback()


@check("result column types (cursor.description)")
def _():
    with connect() as conn:
        cur = conn.cursor()
        run(cur, f"SELECT {', '.join(COLS)} FROM pg3_types WHERE id = 1")
        names = {d.name: conn.adapters.types.get(d.type_code) for d in cur.description}
        want = {
            "i": "int4", "b": "int8", "t": "text", "ok": "bool", "f": "float8",
            "n": "numeric", "d": "date", "ts": "timestamp", "tstz": "timestamptz",
            "u": "uuid", "raw": "bytea", "doc": "jsonb", "js": "json",
        }  # fmt: skip
        got = {name: (info.name if info else None) for name, info in names.items()}
        eq(got, want, "types")


@check("Decimal arithmetic in SQL")
def _():
    with connect() as conn:
        row = run(conn.cursor(), "SELECT n * 2, n FROM pg3_types WHERE id = 1").fetchone()
        eq(row, (decimal.Decimal("24691357.80"), decimal.Decimal("12345678.90")))


# --- transactions ------------------------------------------------------------


def count_items(where, params=()):
    with connect(autocommit=True) as other:
        return run(other.cursor(), f"SELECT count(*) FROM pg3_items WHERE {where}", params).fetchone()[0]


@check("commit is visible to another connection, rollback is not")
def _():
    with connect() as conn:
        cur = conn.cursor()
        run(cur, "INSERT INTO pg3_items (id, name) VALUES (%s, %s)", (100, "committed"))
        eq(count_items("id = 100"), 0, "uncommitted row seen by another connection:")
        conn.commit()
        eq(count_items("id = 100"), 1, "committed row")
        run(cur, "INSERT INTO pg3_items (id, name) VALUES (%s, %s)", (101, "rolled back"))
        conn.rollback()
        eq(count_items("id = 101"), 0, "rolled-back row")
        eq(run(cur, "SELECT count(*) FROM pg3_items WHERE id = 101").fetchone(), (0,))


@check("nested transaction() blocks (savepoints)")
def _():
    with connect() as conn:
        with conn.transaction():
            run(conn.cursor(), "INSERT INTO pg3_items (id, name) VALUES (110, 'outer')")
            try:
                with conn.transaction():
                    run(conn.cursor(), "INSERT INTO pg3_items (id, name) VALUES (111, 'inner')")
                    raise RuntimeError("roll the savepoint back")
            except RuntimeError:
                pass
        eq(count_items("id IN (110, 111)"), 1, "rows after savepoint rollback")
        eq(count_items("id = 110"), 1, "outer row")


@check("unique violation -> UniqueViolation 23505, rollback, continue")
def _():
    with connect() as conn:
        cur = conn.cursor()
        run(cur, "INSERT INTO pg3_items (id, name) VALUES (%s, %s)", (120, "before error"))
        try:
            cur.execute("INSERT INTO pg3_items (id, name) VALUES (%s, %s)", (121, "apple"))
        except errors.UniqueViolation as e:
            eq(e.sqlstate, "23505", "sqlstate")
            assert "duplicate key value violates unique constraint" in e.diag.message_primary, e.diag.message_primary
        except psycopg.Error as e:
            raise AssertionError(f"expected UniqueViolation, got {describe(e)}") from e
        else:
            raise AssertionError("the duplicate insert succeeded")
        eq(conn.info.transaction_status, psycopg.pq.TransactionStatus.INERROR, "transaction status")
        try:
            cur.execute("SELECT 1")
            raise AssertionError("a statement in a failed transaction succeeded")
        except errors.InFailedSqlTransaction:
            pass
        conn.rollback()
        eq(run(cur, "SELECT count(*) FROM pg3_items WHERE id = 120").fetchone(), (0,), "rolled back row")
        run(cur, "INSERT INTO pg3_items (id, name) VALUES (%s, %s)", (122, "after error"))
        conn.commit()
        eq(count_items("id = 122"), 1, "row inserted after the error")


@check("error fields of a unique violation (diag)")
def _():
    with connect() as conn:
        try:
            conn.execute("INSERT INTO pg3_items (id, name) VALUES (%s, %s)", (123, "apple"))
            raise AssertionError("the duplicate insert succeeded")
        except errors.UniqueViolation as e:
            d = e.diag
            got = (d.severity, d.severity_nonlocalized, d.schema_name, d.table_name, d.constraint_name)
            eq(got, ("ERROR", "ERROR", "public", "pg3_items", "pg3_items_name_key"),
               "(severity, severity_nonlocalized, schema_name, table_name, constraint_name)")
            assert d.message_detail == "Key (name)=(apple) already exists.", f"detail {d.message_detail!r}"


@check("other errors map to their psycopg classes")
def _():
    with connect() as conn:
        cases = [
            ("SELECT * FROM pg3_no_such_table", errors.UndefinedTable, "42P01"),
            ("SELECT no_such_column FROM pg3_items", errors.UndefinedColumn, "42703"),
            ("INSERT INTO pg3_items (id) VALUES (200)", errors.NotNullViolation, "23502"),
            ("SELECT 1 / 0", errors.DivisionByZero, "22012"),
            ("SELEC 1", errors.SyntaxError, "42601"),
        ]
        for query, cls, state in cases:
            try:
                conn.execute(query)
            except psycopg.Error as e:
                assert isinstance(e, cls), f"{query!r}: expected {cls.__name__}, got {describe(e)}"
                eq(e.sqlstate, state, f"{query!r} sqlstate")
            else:
                raise AssertionError(f"{query!r} succeeded")
            conn.rollback()


@check("autocommit = True")
def _():
    with connect() as conn:
        conn.autocommit = True
        cur = conn.cursor()
        run(cur, "INSERT INTO pg3_items (id, name) VALUES (%s, %s)", (130, "autocommitted"))
        eq(conn.info.transaction_status, psycopg.pq.TransactionStatus.IDLE, "transaction status")
        eq(count_items("id = 130"), 1, "autocommitted row")
        try:
            cur.execute("INSERT INTO pg3_items (id, name) VALUES (%s, %s)", (131, "apple"))
            raise AssertionError("the duplicate insert succeeded")
        except errors.UniqueViolation:
            pass
        # No transaction to roll back: the connection is usable at once.
        eq(run(cur, "SELECT name FROM pg3_items WHERE id = %s", (130,)).fetchone(), ("autocommitted",))
        with conn.transaction():
            run(cur, "INSERT INTO pg3_items (id, name) VALUES (%s, %s)", (132, "explicit tx"))
            eq(conn.info.transaction_status, psycopg.pq.TransactionStatus.INTRANS, "inside transaction()")
        eq(count_items("id = 132"), 1, "row of the explicit transaction")


@check("server-side (named) cursor")
def _():
    with connect() as conn:
        cur = conn.cursor(name="pg3_cursor")
        cur.itersize = 7
        try:
            # DECLARE ... CURSOR, then FETCH FORWARD 7 until done.
            run(cur, "SELECT id FROM pg3_items WHERE id >= %s ORDER BY id", (10,))
            ids = [r[0] for r in cur]
        finally:
            try:
                cur.close()  # CLOSE, or a pg_cursors lookup after an error
            except psycopg.Error:
                pass
        eq(ids[:3], [10, 11, 12], "first ids")
        eq(len(ids), 25, "row count")  # 10..29, then 100, 110, 122, 130, 132
        conn.commit()


@check("cleanup")
def _():
    with connect() as conn:
        run(conn.cursor(), "DROP TABLE pg3_items")
        run(conn.cursor(), "DROP TABLE pg3_types")
        conn.commit()


sys.exit(1 if FAILED else 0)
