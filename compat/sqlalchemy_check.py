"""SQLAlchemy 2 (psycopg 3 driver) against Shoal.

Core (create_all, insert/select/update/delete with bound parameters), the ORM
(declarative models, relationships, sessions, joins) and reflection
(inspect() and MetaData.reflect()), each check printing `PASS name` or
`FAIL name: reason`. The server comes from PGHOST/PGPORT/PGUSER/PGDATABASE,
which compat/run sets. A failing statement is reported with the SQL sent and
the server's SQLSTATE and message.

The checks build on each other (the ORM uses the tables Core created); when
an early one fails, later ones may fail for the same reason.
"""

import datetime as dt
import decimal
import os
import sys
import traceback

import psycopg
import sqlalchemy as sa
from sqlalchemy import exc, inspect
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, selectinload

URL = sa.URL.create(
    "postgresql+psycopg",
    username=os.environ.get("PGUSER", "shoal"),
    host=os.environ.get("PGHOST", "127.0.0.1"),
    port=int(os.environ["PGPORT"]),
    database=os.environ.get("PGDATABASE", "shoal"),
    query={"connect_timeout": "10"},
)
engine = sa.create_engine(URL)

FAILED = []


def describe(e):
    if isinstance(e, exc.DBAPIError):
        orig = e.orig
        state = getattr(orig, "sqlstate", None)
        msg = orig.diag.message_primary if isinstance(orig, psycopg.Error) and orig.diag.message_primary else str(orig)
        if e.statement is None:
            sent = "no statement: raised while SQLAlchemy set up the connection"
        else:
            stmt = " ".join(str(e.statement).split())
            stmt = stmt if len(stmt) <= 800 else stmt[:800] + " …"
            sent = f"sent: {stmt} params={e.params!r}"
        return f"{type(orig).__name__} {state}: {' '.join(msg.split())} [{sent}]"
    return f"{type(e).__name__}: {' '.join(str(e).split())}"


def check(name):
    def wrap(fn):
        try:
            fn()
        except AssertionError as e:
            frames = [f for f in traceback.extract_tb(e.__traceback__) if f.name != "eq"]
            print(f"FAIL sqlalchemy {name}: assertion at line {frames[-1].lineno}: {e or frames[-1].line}")
            FAILED.append(name)
        except Exception as e:  # noqa: BLE001 — any error is a failed check
            frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == __file__]
            where = f" (raised by `{frames[-1].line}`, line {frames[-1].lineno})" if frames else ""
            print(f"FAIL sqlalchemy {name}: {describe(e)}{where}")
            FAILED.append(name)
        else:
            print(f"PASS sqlalchemy {name}")
        return fn

    return wrap


def eq(got, want, what=""):
    assert got == want, f"{what} expected {want!r}, got {got!r}"


# --- Core --------------------------------------------------------------------

core = sa.MetaData()
authors = sa.Table(
    "sa_authors",
    core,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(50), nullable=False, unique=True),
    sa.Column("born", sa.Date),
)
books = sa.Table(
    "sa_books",
    core,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("author_id", sa.Integer, sa.ForeignKey("sa_authors.id", ondelete="CASCADE"), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("price", sa.Numeric(10, 2)),
    sa.Column("in_print", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("added", sa.DateTime(timezone=True), server_default=sa.func.now()),
    sa.Index("sa_books_title_idx", "title"),
)


@check("engine connect")
def _():
    with engine.connect() as conn:
        eq(conn.execute(sa.text("SELECT 1")).scalar(), 1)
        eq(conn.execute(sa.select(sa.literal(2) + 3)).scalar(), 5)
        assert engine.dialect.server_version_info, "no server version"


@check("MetaData.drop_all/create_all (two related tables)")
def _():
    core.drop_all(engine)  # checkfirst: leftovers of an interrupted run
    core.create_all(engine)
    core.create_all(engine)  # checkfirst: a second call must see the tables and do nothing


@check("Core insert with bound parameters (single, executemany, RETURNING)")
def _():
    with engine.begin() as conn:
        ann = conn.execute(
            authors.insert().returning(authors.c.id), {"name": "Ann", "born": dt.date(1970, 1, 2)}
        ).scalar_one()
        conn.execute(authors.insert(), [{"name": "Bob", "born": None}, {"name": "Cid", "born": dt.date(1980, 5, 6)}])
        bob = conn.execute(sa.select(authors.c.id).where(authors.c.name == "Bob")).scalar_one()
        conn.execute(
            books.insert(),
            [
                {"author_id": ann, "title": "Alpha", "price": decimal.Decimal("10.50")},
                {"author_id": ann, "title": "Beta", "price": decimal.Decimal("7.25")},
                {"author_id": bob, "title": "Gamma", "price": None},
            ],
        )
        eq(conn.execute(sa.select(sa.func.count()).select_from(books)).scalar(), 3, "book count")


@check("Core select (join, filter, order, aggregate, server defaults)")
def _():
    with engine.connect() as conn:
        q = (
            sa.select(authors.c.name, sa.func.count(books.c.id).label("n"), sa.func.sum(books.c.price).label("total"))
            .select_from(authors.outerjoin(books))
            .where(authors.c.name.in_(["Ann", "Bob", "Cid"]))
            .group_by(authors.c.name)
            .order_by(authors.c.name)
        )
        rows = [tuple(r) for r in conn.execute(q)]
        eq(rows, [("Ann", 2, decimal.Decimal("17.75")), ("Bob", 1, None), ("Cid", 0, None)], "rows")
        row = conn.execute(
            sa.select(books.c.in_print, books.c.added, books.c.price).where(books.c.title == sa.bindparam("t")),
            {"t": "Alpha"},
        ).one()
        eq(row.in_print, True, "server_default true")
        assert isinstance(row.added, dt.datetime) and row.added.tzinfo is not None, f"added {row.added!r}"
        eq(row.price, decimal.Decimal("10.50"), "price")
        born = conn.execute(sa.select(authors.c.born).where(authors.c.name == "Cid")).scalar_one()
        eq(born, dt.date(1980, 5, 6), "date")


@check("Core update and delete with bound parameters")
def _():
    with engine.begin() as conn:
        r = conn.execute(
            books.update().where(books.c.title == sa.bindparam("old")).values(title=sa.bindparam("new")),
            [{"old": "Beta", "new": "Beta 2"}],
        )
        eq(r.rowcount, 1, "update rowcount")
        r = conn.execute(books.update().where(books.c.price.is_(None)).values(price=decimal.Decimal("1.00")))
        eq(r.rowcount, 1, "update rowcount")
        r = conn.execute(books.delete().where(books.c.title == "Beta 2"))
        eq(r.rowcount, 1, "delete rowcount")
        titles = conn.execute(sa.select(books.c.title).order_by(books.c.title)).scalars().all()
        eq(titles, ["Alpha", "Gamma"], "titles")


@check("Core transaction rollback")
def _():
    with engine.connect() as conn:
        with conn.begin() as tx:
            conn.execute(authors.insert(), {"name": "Temp"})
            tx.rollback()
        eq(conn.execute(sa.select(sa.func.count()).where(authors.c.name == "Temp")).scalar(), 0)
        conn.rollback()  # end the autobegun read transaction
        try:
            with conn.begin():
                conn.execute(authors.insert(), {"name": "Ann"})
            raise AssertionError("duplicate insert succeeded")
        except exc.IntegrityError as e:
            eq(e.orig.sqlstate, "23505", "sqlstate")
        with conn.begin():
            conn.execute(authors.insert(), {"name": "Dee"})
            with conn.begin_nested() as sp:  # SAVEPOINT / ROLLBACK TO SAVEPOINT
                conn.execute(authors.insert(), {"name": "Eve"})
                sp.rollback()
        eq(conn.execute(sa.select(sa.func.count()).where(authors.c.name == "Eve")).scalar(), 0)
        eq(conn.execute(sa.select(sa.func.count()).where(authors.c.name == "Dee")).scalar(), 1)


# --- ORM ---------------------------------------------------------------------


class Base(DeclarativeBase):
    pass


class Author(Base):
    __tablename__ = "sa_orm_authors"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(50), unique=True)
    books: Mapped[list["Book"]] = relationship(back_populates="author", cascade="all, delete-orphan")


class Book(Base):
    __tablename__ = "sa_orm_books"
    id: Mapped[int] = mapped_column(primary_key=True)
    author_id: Mapped[int] = mapped_column(sa.ForeignKey("sa_orm_authors.id"), index=True)
    title: Mapped[str]
    pages: Mapped[int | None]
    author: Mapped[Author] = relationship(back_populates="books")


@check("ORM create_all")
def _():
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)


@check("ORM session add/commit (insertmanyvalues with RETURNING)")
def _():
    with Session(engine) as s:
        ann = Author(name="Ann", books=[Book(title="One", pages=100), Book(title="Two", pages=250)])
        bob = Author(name="Bob", books=[Book(title="Three")])
        s.add_all([ann, bob])
        s.commit()
        assert ann.id and bob.id and all(b.id for b in ann.books), "primary keys not fetched"
        eq(sorted(b.author_id for b in ann.books), [ann.id, ann.id], "author_id")


@check("ORM query with joins and filters")
def _():
    with Session(engine) as s:
        titles = s.scalars(
            sa.select(Book.title).join(Book.author).where(Author.name == "Ann", Book.pages > 150)
        ).all()
        eq(titles, ["Two"], "join + filter")
        rows = s.execute(
            sa.select(Author.name, sa.func.count(Book.id))
            .join(Author.books, isouter=True)
            .group_by(Author.name)
            .order_by(Author.name)
        ).all()
        eq([tuple(r) for r in rows], [("Ann", 2), ("Bob", 1)], "group by")
        ann = s.scalars(sa.select(Author).options(selectinload(Author.books)).filter_by(name="Ann")).one()
        eq(sorted(b.title for b in ann.books), ["One", "Two"], "selectinload")
        book = s.scalars(sa.select(Book).where(Book.title.like("Th%"))).one()
        eq(book.author.name, "Bob", "lazy load")
        eq(s.get(Author, ann.id).name, "Ann", "session.get")
        eq(s.query(Book).filter(Book.pages.is_(None)).count(), 1, "legacy Query.count")


@check("ORM update, delete with cascade, rollback")
def _():
    with Session(engine) as s:
        book = s.scalars(sa.select(Book).filter_by(title="One")).one()
        book.pages = 101
        s.commit()
        eq(s.scalar(sa.select(Book.pages).filter_by(title="One")), 101, "updated pages")
        s.add(Author(name="Ann"))  # unique violation at flush
        try:
            s.commit()
            raise AssertionError("duplicate author committed")
        except exc.IntegrityError:
            s.rollback()
        bob = s.scalars(sa.select(Author).filter_by(name="Bob")).one()
        s.delete(bob)
        s.commit()
        eq(s.scalar(sa.select(sa.func.count(Book.id))), 2, "books after cascade delete")


# --- reflection --------------------------------------------------------------


@check("inspect().get_table_names()")
def _():
    names = inspect(engine).get_table_names()
    for t in ["sa_authors", "sa_books", "sa_orm_authors", "sa_orm_books"]:
        assert t in names, f"{t} missing from {names}"


@check("inspect().get_columns()")
def _():
    cols = {c["name"]: c for c in inspect(engine).get_columns("sa_books")}
    eq(list(cols), ["id", "author_id", "title", "price", "in_print", "added"], "column names")
    assert isinstance(cols["id"]["type"], sa.INTEGER), f"id type: {cols['id']['type']!r}"
    eq(cols["id"]["nullable"], False, "id nullable")
    assert cols["id"]["autoincrement"], "id should be autoincrement (serial)"
    assert isinstance(cols["title"]["type"], sa.TEXT), f"title type: {cols['title']['type']!r}"
    eq(cols["title"]["nullable"], False, "title nullable")
    assert isinstance(cols["price"]["type"], sa.NUMERIC), f"price type: {cols['price']['type']!r}"
    eq((cols["price"]["type"].precision, cols["price"]["type"].scale), (10, 2), "price precision/scale")
    eq(cols["price"]["nullable"], True, "price nullable")
    assert isinstance(cols["in_print"]["type"], sa.BOOLEAN), f"in_print type: {cols['in_print']['type']!r}"
    eq(cols["in_print"]["default"], "true", "in_print default")
    assert isinstance(cols["added"]["type"], sa.TIMESTAMP), f"added type: {cols['added']['type']!r}"
    eq(cols["added"]["type"].timezone, True, "added timezone")
    eq(cols["added"]["default"], "now()", "added default")
    name = {c["name"]: c for c in inspect(engine).get_columns("sa_authors")}["name"]
    assert isinstance(name["type"], sa.VARCHAR) and name["type"].length == 50, f"varchar(50): {name['type']!r}"


@check("inspect().get_pk_constraint()")
def _():
    pk = inspect(engine).get_pk_constraint("sa_books")
    eq(pk["constrained_columns"], ["id"], "pk columns")
    eq(pk["name"], "sa_books_pkey", "pk name")


@check("inspect().get_foreign_keys()")
def _():
    fks = inspect(engine).get_foreign_keys("sa_books")
    eq(len(fks), 1, f"foreign keys {fks}:")
    fk = fks[0]
    eq(
        (fk["constrained_columns"], fk["referred_table"], fk["referred_columns"], fk["referred_schema"]),
        (["author_id"], "sa_authors", ["id"], None),
        "fk",
    )
    eq(fk["options"].get("ondelete"), "CASCADE", "ondelete")
    eq(fk["name"], "sa_books_author_id_fkey", "fk name")


@check("inspect().get_indexes() and get_unique_constraints()")
def _():
    insp = inspect(engine)
    idx = {i["name"]: i for i in insp.get_indexes("sa_books")}
    assert "sa_books_title_idx" in idx, f"indexes {list(idx)}"
    eq((idx["sa_books_title_idx"]["column_names"], idx["sa_books_title_idx"]["unique"]), (["title"], False), "title idx")
    orm_idx = {i["name"]: i for i in insp.get_indexes("sa_orm_books")}
    eq([i["column_names"] for i in orm_idx.values()], [["author_id"]], "index=True column")
    uq = insp.get_unique_constraints("sa_authors")
    eq([(u["name"], u["column_names"]) for u in uq], [("sa_authors_name_key", ["name"])], "unique constraints")


@check("MetaData().reflect(bind=engine)")
def _():
    md = sa.MetaData()
    md.reflect(bind=engine, only=["sa_authors", "sa_books"])
    b = md.tables["sa_books"]
    eq([c.name for c in b.columns], ["id", "author_id", "title", "price", "in_print", "added"], "columns")
    eq([c.name for c in b.primary_key.columns], ["id"], "primary key")
    fk = next(iter(b.foreign_keys))
    eq(fk.target_fullname, "sa_authors.id", "foreign key target")
    eq(sorted(i.name for i in b.indexes), ["sa_books_title_idx"], "indexes")
    # The reflected tables are usable: a join through the reflected FK.
    with engine.connect() as conn:
        a = md.tables["sa_authors"]
        rows = conn.execute(sa.select(a.c.name, b.c.title).select_from(b.join(a)).order_by(b.c.title)).all()
        eq([tuple(r) for r in rows], [("Ann", "Alpha"), ("Bob", "Gamma")], "join over reflected tables")


@check("cleanup (drop_all)")
def _():
    Base.metadata.drop_all(engine)
    core.drop_all(engine)
    names = inspect(engine).get_table_names()
    assert not [n for n in names if n.startswith("sa_")], f"left over: {names}"


engine.dispose()
sys.exit(1 if FAILED else 0)
